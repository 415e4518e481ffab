import { Controller, Get, Header } from '@nestjs/common'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

// public/ sits next to src/ and dist/, so the same path works from both.
const PAGE = readFileSync(join(__dirname, '..', 'public', 'index.html'), 'utf8')

@Controller()
export class PageController {
  /** GET /: the demo page (login form, "me", socket status). */
  @Get()
  @Header('Content-Type', 'text/html; charset=utf-8')
  @Header('Cache-Control', 'no-store')
  page(): string {
    return PAGE
  }
}
