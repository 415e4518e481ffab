import { Logger, NestApplicationOptions } from '@nestjs/common'
import { NestFactory } from '@nestjs/core'
import type { NestExpressApplication } from '@nestjs/platform-express'
import session from 'express-session'
// The package root; in an application: `from 'sealed-redis-session'`.
import { RedisStore } from '../../..'
import { AppModule } from './app.module'

const EIGHT_HOURS = 8 * 60 * 60 * 1000
const logger = new Logger('Bootstrap')

/** Creates the app, mounts express-session over the store and listens on `port`. */
export async function bootstrap(
  port = Number(process.env.PORT ?? 3000),
  options: NestApplicationOptions = {},
): Promise<NestExpressApplication> {
  const secret = sessionSecret()
  const store = new RedisStore({ url: process.env.REDIS_URL, secret })
  watch(store)

  const app = await NestFactory.create<NestExpressApplication>(AppModule.register(store), options)
  app.use(session({
    store,
    secret,
    name: store.cookieName,
    resave: false,
    saveUninitialized: false,
    // SameSite=Lax: cross-site pages cannot send the cookie, nor open a socket with it.
    cookie: { httpOnly: true, sameSite: 'lax', secure: isProduction(), maxAge: EIGHT_HOURS },
  }))
  app.enableShutdownHooks() // SIGTERM, SIGINT: app.close(), which closes the store
  try {
    await app.listen(port, process.env.HOST ?? '127.0.0.1')
  } catch (err) {
    await app.close()
    throw err
  }
  return app
}

/** The secret that signs the cookies and derives the encryption key. */
function sessionSecret(): string {
  const secret = process.env.SESSION_SECRET
  if (secret) return secret
  if (isProduction()) throw new Error('SESSION_SECRET must be set in production')
  logger.warn('SESSION_SECRET is not set: using a development-only secret')
  return 'development-only-secret'
}

function isProduction(): boolean {
  return process.env.NODE_ENV === 'production'
}

/** Logs the link to Redis and the sessions that do not decrypt. */
function watch(store: RedisStore): void {
  const redisLog = new Logger('Redis')
  store.on('connect', () => redisLog.log('connected'))
  store.on('disconnect', (reason) => redisLog.warn(`connection lost: ${reason}`))
  store.on('error', (err) => redisLog.warn(`${err.code ?? 'error'}: ${err.message}`))
}

if (require.main === module) {
  bootstrap()
    .then(async (app) => logger.log(`listening on ${await app.getUrl()}`))
    .catch((err: unknown) => {
      logger.error(err instanceof Error ? err.message : String(err))
      process.exitCode = 1
    })
}
