// A small app for the live-daemon scenario: an http server on 127.0.0.1:$PORT.
const http = require('http');
const port = Number(process.env.PORT);
let hits = 0;
http
  .createServer((req, res) => {
    hits += 1;
    res.end(`ok ${hits}\n`);
  })
  .listen(port, '127.0.0.1', () => console.log(`listening on 127.0.0.1:${port}`));
