'use strict'

/** Serving an app on an ephemeral port for a test, and closing it so the process can exit. */

const http = require('node:http')

/** Listens on a free port of 127.0.0.1; resolves to the server. */
function listen(app) {
  return new Promise((resolve, reject) => {
    const server = http.createServer(app)
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve(server))
  })
}

/** Closes the server and every connection still open on it. */
function closeServer(server) {
  if (!server) return Promise.resolve()
  server.closeAllConnections()
  return new Promise((resolve) => server.close(() => resolve()))
}

module.exports = { closeServer, listen }
