import {
  BadRequestException, Body, Controller, Get, HttpCode, Post, Req, Res, UseGuards,
} from '@nestjs/common'
import type { Request, Response } from 'express'
import { RedisStore } from '../../..'
import { AuthService } from './auth.service'
import { SessionGuard } from './session.guard'

const USER_ID = /^[A-Za-z0-9._@-]{1,64}$/

interface Me {
  userId: string
}

@Controller('auth')
export class AuthController {
  constructor(
    private readonly auth: AuthService,
    private readonly store: RedisStore,
  ) {}

  /** POST /auth/login `{ userId }`: a new session for that user, its cookie set. */
  @Post('login')
  @HttpCode(200)
  async login(@Req() req: Request, @Body() body: unknown): Promise<Me> {
    const userId = parseUserId(body)
    await this.auth.login(req, userId)
    return { userId }
  }

  /** POST /auth/logout: the session destroyed in Redis, the cookie cleared. */
  @Post('logout')
  @HttpCode(204)
  async logout(@Req() req: Request, @Res({ passthrough: true }) res: Response): Promise<void> {
    await this.auth.logout(req)
    res.clearCookie(this.store.cookieName)
  }

  /** GET /auth/me: the logged-in user, or 401. */
  @Get('me')
  @UseGuards(SessionGuard)
  me(@Req() req: Request): Me {
    return { userId: String(req.session.userId) }
  }
}

function parseUserId(body: unknown): string {
  const userId = (body as { userId?: unknown } | null)?.userId
  if (typeof userId !== 'string' || !USER_ID.test(userId)) {
    throw new BadRequestException('userId: 1 to 64 characters among A-Z a-z 0-9 . _ @ -')
  }
  return userId
}
