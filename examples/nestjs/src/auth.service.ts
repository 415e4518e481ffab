import { Injectable } from '@nestjs/common'
import type { Request } from 'express'
import { RedisStore } from '../../..'
import { ChannelsGateway } from './channels.gateway'

@Injectable()
export class AuthService {
  constructor(
    private readonly store: RedisStore,
    private readonly channels: ChannelsGateway,
  ) {}

  /** Logs `userId` in: a new session id (against fixation), the user saved in Redis. */
  async login(req: Request, userId: string): Promise<void> {
    // A real platform checks credentials here (campus SSO, password); the demo trusts anyone.
    await this.store.saveSession(req, userId)
  }

  /** Destroys the session, then drops the sockets that were opened with it. */
  async logout(req: Request): Promise<void> {
    const userId = req.session.userId
    if (!userId) return
    await this.store.destroySession(req.sessionID)
    await this.channels.recheckUser(userId)
  }
}
