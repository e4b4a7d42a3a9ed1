/**
 * A small strftime(3) formatter for UTC times, covering the directives that
 * Python's `time.strftime` documents.
 *
 * @module
 */

const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const MONTHS = [
  "January",
  "February",
  "March",
  "April",
  "May",
  "June",
  "July",
  "August",
  "September",
  "October",
  "November",
  "December",
];

const pad = (n: number, width = 2): string => String(n).padStart(width, "0");

function dayOfYear(d: Date): number {
  return Math.floor((d.getTime() - Date.UTC(d.getUTCFullYear(), 0, 1)) / 86_400_000) + 1;
}

const DIRECTIVES: Readonly<Record<string, (d: Date) => string>> = {
  a: (d) => DAYS[d.getUTCDay()]!.slice(0, 3),
  A: (d) => DAYS[d.getUTCDay()]!,
  b: (d) => MONTHS[d.getUTCMonth()]!.slice(0, 3),
  B: (d) => MONTHS[d.getUTCMonth()]!,
  d: (d) => pad(d.getUTCDate()),
  e: (d) => String(d.getUTCDate()).padStart(2, " "),
  f: (d) => pad(d.getUTCMilliseconds() * 1000, 6),
  F: (d) => `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`,
  H: (d) => pad(d.getUTCHours()),
  I: (d) => pad(d.getUTCHours() % 12 || 12),
  j: (d) => pad(dayOfYear(d), 3),
  m: (d) => pad(d.getUTCMonth() + 1),
  M: (d) => pad(d.getUTCMinutes()),
  p: (d) => (d.getUTCHours() < 12 ? "AM" : "PM"),
  s: (d) => String(Math.floor(d.getTime() / 1000)),
  S: (d) => pad(d.getUTCSeconds()),
  T: (d) => `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`,
  u: (d) => String(d.getUTCDay() || 7),
  w: (d) => String(d.getUTCDay()),
  y: (d) => pad(d.getUTCFullYear() % 100),
  Y: (d) => pad(d.getUTCFullYear(), 4),
  z: () => "+0000",
  Z: () => "UTC",
  "%": () => "%",
};

/**
 * Checks a format string and returns a function that formats dates in UTC.
 *
 * @throws {SyntaxError} on an unknown directive or a trailing `%`
 */
export function compileStrftime(format: string): (date: Date) => string {
  const parts: ((d: Date) => string)[] = [];
  let literal = "";
  for (let i = 0; i < format.length; i++) {
    const ch = format[i]!;
    if (ch !== "%") {
      literal += ch;
      continue;
    }
    const directive = format[i + 1];
    if (directive === undefined) {
      throw new SyntaxError(`Cannot parse format "${format}": it ends with a lone '%'`);
    }
    const fn = DIRECTIVES[directive];
    if (fn === undefined) {
      throw new SyntaxError(`Cannot parse format "${format}": unknown directive '%${directive}'`);
    }
    if (literal) {
      const text = literal;
      parts.push(() => text);
      literal = "";
    }
    parts.push(fn);
    i++;
  }
  if (literal) parts.push(() => literal);
  return (date) => parts.map((part) => part(date)).join("");
}

/**
 * Formats `date` in UTC with strftime directives.
 *
 * @throws {SyntaxError} on an unknown directive
 */
export function strftime(format: string, date: Date): string {
  return compileStrftime(format)(date);
}
