// HTTP server for the real-PM2 tests: listens on 127.0.0.1:$PORT.
// It logs once, at listen, and never again: a fork app that stays silent
// survives the death of its daemon (pm2-internals §5.4), which is what the
// orphan scenario needs.
const http = require('http');

const port = Number(process.env.PORT);
if (!Number.isInteger(port) || port <= 0) {
  console.error('http.js: PORT must be set to a port number');
  process.exit(2);
}
http
  .createServer((req, res) => res.end(`ok from ${process.pid}\n`))
  .listen(port, '127.0.0.1', () => console.log(`http.js ${process.pid} listening on 127.0.0.1:${port}`));
