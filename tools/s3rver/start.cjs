// node start.cjs PORT DIR: an S3 server on 127.0.0.1 (the package ships no CLI). Keys: S3RVER / S3RVER.
const S3rver = require("@20minutes/s3rver");
const [port, directory] = process.argv.slice(2);
new S3rver({ address: "127.0.0.1", port: Number(port), directory, silent: true }).run()
  .then(({ port }) => console.log(`listening ${port}`));
