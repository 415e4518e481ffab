'use strict'

/**
 * The end-to-end app, run as a child process (one per contender, started the same way for
 * all): Express + express-session over the contender's store. `POST /login` makes a session,
 * `GET /me` reads `req.session.userId`; express-session then touches the session (rolling).
 * Talks to the parent over IPC: `ready` with the port, `cpu` replies, `close`.
 */

const express = require('express')
const session = require('express-session')
const { contenders } = require('./contenders')
const { mainThreadNs } = require('./cpu')
const { COOKIE, sessionFields } = require('./session')

const [name, url, secret] = process.argv.slice(2)

async function main() {
  const contender = contenders().find((c) => c.name === name)
  if (!contender) throw new Error(`unknown contender ${name}`)
  const { store, close } = await contender.create(url, secret)

  const app = express()
  app.use(session({
    store, secret, resave: false, saveUninitialized: false, rolling: true, cookie: COOKIE,
  }))
  let logins = 0
  app.post('/login', (req, res, next) => {
    req.session.regenerate((err) => {
      if (err) return next(err)
      Object.assign(req.session, sessionFields(logins++))
      req.session.save((saveErr) => (saveErr ? next(saveErr) : res.sendStatus(204)))
    })
  })
  app.get('/me', (req, res) => {
    if (!req.session.userId) return res.sendStatus(401)
    res.json({ userId: req.session.userId })
  })

  const server = app.listen(0, '127.0.0.1', () => {
    process.send({ type: 'ready', port: server.address().port })
  })
  process.on('message', (message) => onMessage(message, server, close))
}

function onMessage(message, server, close) {
  if (message.type === 'cpu') {
    const usage = process.cpuUsage()
    process.send({ type: 'cpu', id: message.id, process: usage.user + usage.system,
      main: mainThreadNs() / 1000 })
  } else if (message.type === 'close') {
    server.closeAllConnections()
    server.close()
    Promise.resolve(close()).finally(() => process.disconnect())
  }
}

main().catch((err) => {
  console.error(`app ${name}:`, err)
  process.exit(1)
})
