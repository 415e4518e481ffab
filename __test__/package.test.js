'use strict'

// The npm tarball: it carries the built addon, so it installs into an empty folder and works
// there with no Rust toolchain on PATH.

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { RedisServer } = require('./helpers/redis-server')

const ROOT = path.join(__dirname, '..')

describe('npm pack', () => {
  let dir
  let tarball
  let server

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'srs-pack-'))
    const out = npm(['pack', '--ignore-scripts', '--json', '--pack-destination', dir], ROOT)
    tarball = path.join(dir, JSON.parse(out)[0].filename)
    server = await RedisServer.start()
  })

  after(async () => {
    await server.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  })

  it('ships the addon, the JS layer and the typings, and no sources', () => {
    const files = JSON.parse(npm(['pack', '--dry-run', '--ignore-scripts', '--json'], ROOT))[0]
      .files.map((file) => file.path)
    for (const needed of ['index.js', 'index.d.ts', 'native.js', 'lib/options.js']) {
      assert.ok(files.includes(needed), `${needed} missing from ${files}`)
    }
    assert.ok(files.some((file) => file.endsWith('.node')), 'no .node binary in the tarball')
    assert.ok(!files.some((file) => file.startsWith('src/') || file.startsWith('__test__/')))
  })

  it('installs into an empty folder and works without cargo on PATH', () => {
    const app = path.join(dir, 'app')
    fs.mkdirSync(app)
    fs.writeFileSync(path.join(app, 'package.json'), '{"name":"app","private":true}')
    npm(['install', '--no-audit', '--no-fund', '--prefer-offline', tarball, 'express-session'],
      app, { PATH: withoutCargo(process.env.PATH) })

    const script = `
      const { RedisStore } = require('sealed-redis-session')
      const store = new RedisStore({ url: ${JSON.stringify(server.url)}, secret: 's' })
      store.set('packed', { cookie: {}, userId: 'u' })
        .then(() => store.get('packed'))
        .then((sess) => { process.stdout.write(sess.userId); return store.close() })`
    const env = { ...process.env, PATH: withoutCargo(process.env.PATH) }
    const out = execFileSync(process.execPath, ['-e', script], { cwd: app, env, timeout: 20000 })
    assert.equal(out.toString(), 'u')
  })
})

function npm(args, cwd, extraEnv = {}) {
  const env = { ...process.env, ...extraEnv }
  return execFileSync('npm', args, { cwd, env, timeout: 120000, encoding: 'utf8' })
}

function withoutCargo(pathList) {
  return pathList.split(path.delimiter).filter((entry) => !entry.includes('.cargo')).join(':')
}
