'use strict'

/**
 * End to end: headless Chromium (playwright-core) on the NestJS example's page: log in
 * through the form, see the socket admitted, log out, see a reconnection refused.
 * Needs /usr/bin/chromium (Debian's `chromium`; .ci/run installs it).
 */

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { execFile } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { promisify } = require('node:util')
const { chromium } = require('playwright-core')
const { RedisServer } = require('./helpers/redis-server')

const ROOT = path.join(__dirname, '..')
const MAIN = path.join(ROOT, 'examples', 'nestjs', 'dist', 'main.js')
const CHROMIUM = '/usr/bin/chromium'
const SCREENSHOT = path.join(__dirname, 'artifacts', 'browser.png')
const WAIT_MS = 10_000
const BUILD_MS = 120_000
const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--no-first-run', '--disable-sync',
]

function requireChromium() {
  if (fs.existsSync(CHROMIUM)) return
  assert.fail(`${CHROMIUM} is missing: install Debian's chromium ` +
    '(apt-get update && apt-get install -y chromium; .ci/run does it)')
}

async function buildExample() {
  await promisify(execFile)('npm', ['run', '--silent', 'build:example'], {
    cwd: ROOT,
    timeout: BUILD_MS,
  })
}

/** Boots the built example on a free port against `redisUrl`. */
async function bootExample(redisUrl) {
  process.env.REDIS_URL = redisUrl
  process.env.SESSION_SECRET = 'browser-test-secret'
  const { bootstrap } = require(MAIN)
  const app = await bootstrap(0, { logger: ['error', 'warn'], abortOnError: false })
  const { port } = app.getHttpServer().address()
  return { app, base: `http://127.0.0.1:${port}` }
}

/** A headless Chromium with a fresh profile directory. */
async function launch(profileDir) {
  const context = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: WAIT_MS,
  })
  context.setDefaultTimeout(WAIT_MS)
  return context
}

describe('browser: the NestJS example page in headless Chromium', () => {
  let redis
  let app
  let base
  let context
  let page
  let profileDir
  const pageErrors = []

  const status = () => page.locator('#socket-status')
  const waitForState = (state) =>
    page.waitForSelector(`#socket-status[data-state="${state}"]`, { timeout: WAIT_MS })
  /** How many times the log says the socket was refused. */
  const refusals = () => page.locator('#log li', { hasText: 'refused: unauthorized' }).count()

  before(async () => {
    requireChromium()
    await buildExample()
    redis = await RedisServer.start()
    ;({ app, base } = await bootExample(redis.url))
    profileDir = fs.mkdtempSync(path.join(os.tmpdir(), 'srs-chromium-'))
    context = await launch(profileDir)
    page = context.pages()[0] || await context.newPage()
    page.on('pageerror', (err) => pageErrors.push(err.message))
  }, { timeout: BUILD_MS + 60_000 })

  after(async () => {
    if (context) await context.close()
    if (profileDir) fs.rmSync(profileDir, { recursive: true, force: true })
    if (app) await app.close()
    if (redis) await redis.stop()
  })

  it('an anonymous visitor sees nobody and a refused socket', async () => {
    await page.goto(base + '/', { timeout: WAIT_MS })
    await page.waitForFunction(() => document.getElementById('me').textContent === 'nobody')
    await waitForState('unauthorized')
  })

  it('logging in through the form shows the user and admits the socket', async () => {
    await page.fill('#user-id', 'student-42')
    await page.click('#login')
    await page.waitForFunction(() => document.getElementById('me').textContent === 'student-42')
    await waitForState('connected')
    assert.equal(await status().textContent(), 'connected as student-42')

    const cookies = await context.cookies(base)
    const sid = cookies.find((c) => c.name === 'connect.sid')
    assert.ok(sid, 'the browser holds the session cookie')
    assert.equal(sid.httpOnly, true)

    fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true })
    await page.screenshot({ path: SCREENSHOT, fullPage: true })
    assert.ok(fs.statSync(SCREENSHOT).size > 1000, 'the screenshot is written')
  })

  it('logging out drops the socket, and a reconnection is refused', async () => {
    const [old] = (await context.cookies(base)).filter((c) => c.name === 'connect.sid')
    const before = await refusals()
    await page.click('#logout')
    await waitForState('unauthorized')
    await page.waitForFunction(() => document.getElementById('me').textContent === 'nobody')
    assert.equal(await refusals(), before + 1, 'the live socket is dropped at logout')

    // Even with the old cookie put back, the destroyed session does not open a socket.
    await context.addCookies([old])
    await page.click('#reconnect')
    await page.waitForFunction((n) => [...document.querySelectorAll('#log li')]
      .filter((li) => li.textContent.includes('refused: unauthorized')).length > n, before + 1)
    assert.equal(await status().getAttribute('data-state'), 'unauthorized')
    assert.deepEqual(pageErrors, [], 'no errors in the page')
  })
})
