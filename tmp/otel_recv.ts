Deno.serve({ port: 4399, hostname: "127.0.0.1", onListen() {} }, async (req) => {
  const body = new Uint8Array(await req.arrayBuffer());
  const text = new TextDecoder().decode(body);
  console.log(new URL(req.url).pathname, req.headers.get("content-type"), body.length, text.replace(/[^\x20-\x7e]/g, "."));
  return new Response("{}", { headers: { "content-type": "application/json" } });
});
