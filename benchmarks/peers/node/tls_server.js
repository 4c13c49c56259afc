'use strict';
// The TLS benchmark server on Node's `tls`: a sink, as benchmarks/README.md ("TLS")
// describes. Counts bytes until the peer's end, answers "<count>\n" and ends.
//   node tls_server.js --port PORT --cert FILE --key FILE
const fs = require('fs');
const tls = require('tls');

const args = {};
for (let i = 2; i + 1 < process.argv.length; i += 2) args[process.argv[i].slice(2)] = process.argv[i + 1];
const server = tls.createServer({ cert: fs.readFileSync(args.cert), key: fs.readFileSync(args.key) }, (socket) => {
  socket.setNoDelay(true);
  let bytes = 0;
  socket.on('data', (d) => { bytes += d.length; });
  socket.on('end', () => socket.end(`${bytes}\n`));
  socket.on('error', () => {});
});
server.on('tlsClientError', () => {});
server.listen(Number(args.port || 0), '127.0.0.1', 4096, () => {
  process.stdout.write(`listening on 127.0.0.1:${server.address().port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
