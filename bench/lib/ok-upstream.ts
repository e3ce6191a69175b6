// A minimal upstream for the slow-client benchmark, run as its own process:
//   node bench/lib/ok-upstream.ts <host:port>
// Reads each request's body and answers 200 "ok\n"; counts requests by method, and those whose
// body never ended (cut on the way), served at GET /stats.
import http from 'node:http';

const [address = '127.0.0.1:0'] = process.argv.slice(2);
const i = address.lastIndexOf(':');
const stats = { requests: 0, withBody: 0, aborted: 0 };
const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  if (req.url === '/stats') {
    res.end(JSON.stringify(stats));
    return;
  }
  stats.requests++;
  if (req.method !== 'GET') stats.withBody++;
  req.once('aborted', () => stats.aborted++);
  req.resume();
  req.once('end', () => res.end('ok\n'));
});
server.listen(Number(address.slice(i + 1)), address.slice(0, i));
