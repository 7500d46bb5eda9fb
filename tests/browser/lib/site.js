// A customer's own website on another origin (http://127.0.0.1:<port>), where the owner
// pastes the node's embed snippet: the widget runs there as it would on a real site.
import http from 'node:http';

export async function customerSite() {
  let snippet = '';
  const server = http.createServer((req, res) => {
    if (req.url !== '/') {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Smile Dental — book your visit</title></head>
<body><h1>Smile Dental</h1><p>Family dentistry in the old town.</p>
${snippet}
</body></html>`);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    origin: `http://127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}/`,
    /** What the owner pasted before `</body>`. */
    paste: (html) => {
      snippet = html;
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}
