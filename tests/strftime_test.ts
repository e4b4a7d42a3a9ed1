import assert from "node:assert/strict";
import { compileStrftime, strftime } from "../mod/common/strftime.ts";

const date = new Date(Date.UTC(2021, 3, 5, 7, 8, 9, 123));

Deno.test("strftime() formats the original DATE_STORE_FORMAT in UTC", () => {
  assert.equal(strftime("%Y-%m-%d %H:%M:%S", date), "2021-04-05 07:08:09");
});

Deno.test("strftime() supports names, 12-hour clock, day of year and literals", () => {
  assert.equal(strftime("%a %A %b %B %d %e", date), "Mon Monday Apr April 05  5");
  assert.equal(strftime("%I%p %j %y %f %z %Z %%", date), "07AM 095 21 123000 +0000 UTC %");
  assert.equal(strftime("%F %T", date), "2021-04-05 07:08:09");
  assert.equal(strftime("%s", date), "1617606489");
  assert.equal(strftime("%I %p", new Date(Date.UTC(2021, 0, 1, 0))), "12 AM");
  assert.equal(strftime("at %H h", date), "at 07 h");
});

Deno.test("compileStrftime() rejects unknown directives and a lone %", () => {
  assert.throws(() => compileStrftime("%Q"), { name: "SyntaxError", message: /unknown directive '%Q'/ });
  assert.throws(() => compileStrftime("%Y-%"), { name: "SyntaxError", message: /lone '%'/ });
});
