import { DynamicModule, Logger, Module, OnApplicationShutdown } from '@nestjs/common'
import { RedisStore } from '../../..'
import { AuthController } from './auth.controller'
import { AuthService } from './auth.service'
import { ChannelsGateway } from './channels.gateway'
import { PageController } from './page.controller'

@Module({
  controllers: [AuthController, PageController],
  providers: [AuthService, ChannelsGateway],
})
export class AppModule implements OnApplicationShutdown {
  constructor(private readonly store: RedisStore) {}

  /** The module with `store` as a provider: controllers, services and gateways share it. */
  static register(store: RedisStore): DynamicModule {
    return { module: AppModule, providers: [{ provide: RedisStore, useValue: store }] }
  }

  /** Last step of app.close(), once HTTP and socket.io are closed. */
  async onApplicationShutdown(): Promise<void> {
    await this.store.close()
    new Logger('Redis').log('session store closed')
  }
}
