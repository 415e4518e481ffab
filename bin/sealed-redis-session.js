#!/usr/bin/env node
'use strict'

// `npx sealed-redis-session <command>`: see lib/cli.js.

require('../lib/cli')
  .main(process.argv.slice(2))
  .then((code) => {
    process.exitCode = code
  })
  .catch((err) => {
    process.stderr.write(`sealed-redis-session: ${err.message}\n`)
    process.exitCode = 1
  })
