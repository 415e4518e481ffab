import { Logger } from '@nestjs/common'
import {
  ConnectedSocket, OnGatewayConnection, SubscribeMessage, WebSocketGateway, WebSocketServer,
  WsException,
} from '@nestjs/websockets'
import type { Server, Socket } from 'socket.io'
import { RedisStore } from '../../..'

/** What `refuse` needs: a local Socket, or a RemoteSocket from fetchSockets(). */
interface Client {
  readonly handshake: Socket['handshake']
  emit(event: string, ...args: unknown[]): unknown
  disconnect(close?: boolean): unknown
}

const userRoom = (userId: string): string => `user:${userId}`

@WebSocketGateway()
export class ChannelsGateway implements OnGatewayConnection {
  @WebSocketServer() private readonly server!: Server
  private readonly logger = new Logger(ChannelsGateway.name)

  constructor(private readonly store: RedisStore) {}

  /** Admits a socket whose handshake cookie names a logged-in session; drops the others. */
  async handleConnection(client: Socket): Promise<void> {
    const userId = await this.userIdOf(client)
    if (!userId) return refuse(client)
    client.data.userId = userId
    await client.join(userRoom(userId))
    client.emit('authenticated', { userId })
  }

  /** `whoami` -> `{ userId }`; an exception for a socket not (yet) admitted. */
  @SubscribeMessage('whoami')
  whoami(@ConnectedSocket() client: Socket): { userId: string } {
    const userId: unknown = client.data.userId
    if (typeof userId !== 'string') throw new WsException('unauthorized')
    return { userId }
  }

  /** After a logout: drops the sockets of `userId` whose session is gone. */
  async recheckUser(userId: string): Promise<void> {
    const sockets = await this.server.in(userRoom(userId)).fetchSockets()
    await Promise.all(sockets.map(async (socket) => {
      if (!(await this.userIdOf(socket))) refuse(socket)
    }))
  }

  /** The user of the session named by the handshake cookie, or null. */
  private async userIdOf(client: Client): Promise<string | null> {
    try {
      const session = await this.store.getSessionFromRawCookie(client.handshake.headers.cookie)
      return session?.userId ?? null
    } catch (err) {
      // Redis unreachable: the store failed within its commandTimeout; refuse the socket.
      this.logger.warn(`session lookup failed: ${(err as Error).message}`)
      return null
    }
  }
}

/** Tells the client why, then closes its connection. */
function refuse(client: Client): void {
  client.emit('unauthorized', { message: 'log in first' })
  client.disconnect(true)
}
