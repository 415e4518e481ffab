'use strict'

/**
 * `sign` / `unsign` against the reference `cookie-signature` on thousands of generated inputs.
 * The generator is seeded: a failure message names the seed and the case, and running again
 * with `SIGNATURE_SEED=<seed>` reproduces it exactly.
 */

const { describe, it } = require('node:test')
const assert = require('node:assert/strict')
const cookieSignature = require('cookie-signature')
const { sign, unsign } = require('..')
const { prng } = require('./helpers/prng')

const SEED = Number(process.env.SIGNATURE_SEED) || 0x5eed1e55
const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
const SIG_LEN = 43

/** A generator for one test: its own stream, derived from the seed and a label. */
function gen(label) {
  let salt = 0
  for (const ch of label) salt = (Math.imul(salt, 31) + ch.charCodeAt(0)) >>> 0
  const seed = (SEED ^ salt) >>> 0
  const random = prng(seed)
  const int = (lo, hi) => lo + Math.floor(random() * (hi - lo + 1))
  const pick = (list) => list[int(0, list.length - 1)]
  return { seed, random, int, pick }
}

function asciiChar(g) {
  return String.fromCharCode(g.int(0, 0x7f))
}

/** Any scalar value: ASCII, Latin-1, the rest of the BMP (no surrogates), or astral. */
function unicodeChar(g) {
  const range = g.int(0, 3)
  if (range === 0) return asciiChar(g)
  if (range === 1) return String.fromCodePoint(g.int(0x80, 0x7ff))
  if (range === 2) {
    const cp = g.int(0x800, 0xffff - 0x800)
    return String.fromCodePoint(cp >= 0xd800 ? cp + 0x800 : cp)
  }
  return String.fromCodePoint(g.int(0x10000, 0x10ffff))
}

function randomString(g, maxLen, charFn) {
  const len = g.int(0, maxLen)
  let out = ''
  for (let i = 0; i < len; i++) out += charFn(g)
  return out
}

function randomSecret(g) {
  const kind = g.int(0, 9)
  if (kind === 0) return ''
  if (kind <= 5) return randomString(g, 40, asciiChar)
  if (kind <= 8) return randomString(g, 40, unicodeChar)
  return randomString(g, 300, unicodeChar)
}

function preview(value) {
  if (typeof value !== 'string') return String(value)
  const text = JSON.stringify(value)
  return text.length > 80 ? `${text.slice(0, 80)}... (${value.length} chars)` : text
}

function where(g, i, value, secret) {
  return `seed=${g.seed} (SIGNATURE_SEED=${SEED}) case=${i} ` +
    `value=${preview(value)} secret=${preview(secret)}`
}

/** Asserts that `sign` and `unsign` agree with cookie-signature on one (value, secret). */
function checkRoundTrip(g, i, value, secret) {
  const ctx = where(g, i, value, secret)
  const expected = cookieSignature.sign(value, secret)
  const signed = sign(value, secret)
  assert.equal(signed, expected, `sign differs: ${ctx}`)
  assert.equal(unsign(signed, secret), value, `unsign(sign) lost the value: ${ctx}`)
  assert.equal(cookieSignature.unsign(signed, secret), value, `reference rejects: ${ctx}`)
}

/** Asserts `unsign(input, secret)` equals the reference's answer; returns that answer. */
function checkUnsign(g, i, input, secret) {
  const expected = cookieSignature.unsign(input, secret)
  const actual = unsign(input, secret)
  assert.equal(actual, expected, `unsign differs: ${where(g, i, input, secret)}`)
  return actual
}

/** The reference answer for several secrets: the first one that verifies, else false. */
function referenceUnsignAny(input, secrets) {
  for (const secret of secrets) {
    const value = cookieSignature.unsign(input, secret)
    if (value !== false) return value
  }
  return false
}

function repeat(label, count, body) {
  const g = gen(label)
  for (let i = 0; i < count; i++) body(g, i)
}

describe('sign matches cookie-signature byte for byte', () => {
  it('on random ASCII values and secrets (control characters, NUL)', () => {
    repeat('ascii', 3000, (g, i) => {
      checkRoundTrip(g, i, randomString(g, 64, asciiChar), randomSecret(g))
    })
  })

  it('on random unicode values including astral characters', () => {
    repeat('unicode', 3000, (g, i) => {
      const value = randomString(g, 48, unicodeChar)
      checkRoundTrip(g, i, value, randomSecret(g))
    })
  })

  it('the unicode generator really produces astral characters', () => {
    const g = gen('astral-check')
    const text = Array.from({ length: 200 }, () => randomString(g, 48, unicodeChar)).join('')
    assert.match(text, /[\u{10000}-\u{10ffff}]/u, `seed=${g.seed}`)
    assert.ok(text.isWellFormed(), `generator made a lone surrogate, seed=${g.seed}`)
  })

  it('on values containing dots (leading, trailing, only dots)', () => {
    const dotty = (g) => (g.int(0, 2) === 0 ? '.' : asciiChar(g))
    repeat('dots', 2000, (g, i) => checkRoundTrip(g, i, randomString(g, 40, dotty), 'k'))
    const fixed = ['.', '..', '.a', 'a.', 'a.b.c', '...x...', 'a.b.' + 'A'.repeat(SIG_LEN)]
    const g = gen('dots-fixed')
    fixed.forEach((value, i) => checkRoundTrip(g, i, value, randomSecret(g)))
  })

  it('on the empty value, with random secrets and with an empty secret', () => {
    repeat('empty', 300, (g, i) => checkRoundTrip(g, i, '', randomSecret(g)))
    checkRoundTrip(gen('empty-empty'), 0, '', '')
    assert.equal(sign('', 'k'), cookieSignature.sign('', 'k'))
    assert.match(sign('', 'k'), /^\.[A-Za-z0-9+/]{43}$/)
  })

  it('on long values (10 KB ASCII and unicode)', () => {
    repeat('long', 60, (g, i) => {
      const charFn = i % 2 === 0 ? asciiChar : unicodeChar
      let value = ''
      while (value.length < 10 * 1024) value += charFn(g)
      checkRoundTrip(g, i, value, randomSecret(g))
    })
  })

  it('with random secrets, including secrets longer than the HMAC block', () => {
    repeat('secrets', 2000, (g, i) => {
      const secret = g.int(0, 1) ? randomSecret(g) : randomString(g, 200, unicodeChar)
      checkRoundTrip(g, i, randomString(g, 24, asciiChar), secret)
    })
    const block = ['x'.repeat(63), 'x'.repeat(64), 'x'.repeat(65), 'é'.repeat(40)]
    block.forEach((secret, i) => checkRoundTrip(gen('block'), i, 'value', secret))
  })

  it('on a known vector', () => {
    assert.equal(sign('hello', 'tobiiscool'), 'hello.DGDUkGlIkCzPz+C0B064FNgHdEjox7ch8tOBGslZ5QI')
  })
})

describe('unsign matches cookie-signature', () => {
  it('accepts correctly signed values and returns the exact value', () => {
    repeat('correct', 2000, (g, i) => {
      const value = randomString(g, 40, g.int(0, 1) ? asciiChar : unicodeChar)
      const secret = randomSecret(g)
      const signed = cookieSignature.sign(value, secret)
      assert.equal(checkUnsign(g, i, signed, secret), value, where(g, i, value, secret))
    })
  })

  it('rejects values signed with another secret', () => {
    repeat('other-secret', 2000, (g, i) => {
      const value = randomString(g, 40, unicodeChar)
      const a = randomSecret(g)
      let b = randomSecret(g)
      if (a === b) b += '!'
      const signed = cookieSignature.sign(value, a)
      assert.equal(checkUnsign(g, i, signed, b), false, where(g, i, signed, b))
    })
  })

  it('rejects truncated signatures, down to removing the dot', () => {
    repeat('truncated', 300, (g, i) => {
      const value = randomString(g, 30, asciiChar)
      const signed = cookieSignature.sign(value, 'k')
      for (let cut = 1; cut <= SIG_LEN + 1; cut++) {
        const input = signed.slice(0, signed.length - cut)
        assert.equal(checkUnsign(g, i, input, 'k'), false, where(g, i, input, 'k'))
      }
    })
  })

  it('rejects extended signatures (padding, base64, other characters)', () => {
    repeat('extended', 1000, (g, i) => {
      const value = randomString(g, 30, unicodeChar)
      const signed = cookieSignature.sign(value, 's')
      const tail = g.pick(['=', '==', '.', ' ', '\0', g.pick([...BASE64]),
        randomString(g, 8, unicodeChar) + 'x'])
      const input = g.int(0, 1) ? signed + tail : tail + signed
      assert.equal(checkUnsign(g, i, input, 's'), false, where(g, i, input, 's'))
    })
  })

  it('rejects signatures with one flipped bit or one replaced character', () => {
    repeat('mutated', 3000, (g, i) => {
      const value = randomString(g, 30, asciiChar)
      const secret = randomSecret(g)
      const signed = cookieSignature.sign(value, secret)
      const at = g.int(0, signed.length - 1)
      const code = signed.charCodeAt(at)
      const replacement = g.int(0, 1)
        ? String.fromCharCode(code ^ (1 << g.int(0, 6)))
        : g.pick([...BASE64])
      const input = signed.slice(0, at) + replacement + signed.slice(at + 1)
      const result = checkUnsign(g, i, input, secret)
      if (input !== signed) assert.equal(result, false, where(g, i, input, secret))
    })
  })

  it('rejects strings without a dot', () => {
    repeat('no-dot', 2000, (g, i) => {
      const input = randomString(g, 80, unicodeChar).replaceAll('.', '')
      assert.equal(checkUnsign(g, i, input, 'k'), false, where(g, i, input, 'k'))
    })
    const signed = cookieSignature.sign('abc', 'k')
    assert.equal(unsign(signed.replace('.', ''), 'k'), false)
    assert.equal(unsign('', 'k'), false)
  })

  it('agrees on random garbage shaped like a signed value', () => {
    repeat('garbage', 2000, (g, i) => {
      let sig = ''
      for (let k = 0; k < g.pick([42, 43, 44]); k++) sig += g.pick([...BASE64])
      const input = `${randomString(g, 20, unicodeChar)}.${sig}`
      assert.equal(checkUnsign(g, i, input, randomSecret(g)), false)
    })
  })
})

describe('unsign with several secrets', () => {
  function secretList(g) {
    return Array.from({ length: g.int(2, 6) }, (_, k) => `${randomSecret(g)}#${k}`)
  }

  function checkMany(g, i, value, signedWith, secrets) {
    const input = cookieSignature.sign(value, signedWith)
    const ctx = `${where(g, i, value, signedWith)} secrets=${preview(secrets.join('|'))}`
    assert.equal(unsign(input, secrets), referenceUnsignAny(input, secrets), ctx)
    return unsign(input, secrets)
  }

  it('finds the value when the matching secret is first', () => {
    repeat('many-first', 1000, (g, i) => {
      const secrets = secretList(g)
      const value = randomString(g, 30, unicodeChar)
      assert.equal(checkMany(g, i, value, secrets[0], secrets), value)
    })
  })

  it('finds the value when the matching secret is last', () => {
    repeat('many-last', 1000, (g, i) => {
      const secrets = secretList(g)
      const value = randomString(g, 30, unicodeChar)
      assert.equal(checkMany(g, i, value, secrets.at(-1), secrets), value)
    })
  })

  it('finds the value when the matching secret is in the middle or repeated', () => {
    repeat('many-middle', 500, (g, i) => {
      const secrets = secretList(g)
      const match = secrets[g.int(1, secrets.length - 1)]
      const value = randomString(g, 30, asciiChar)
      assert.equal(checkMany(g, i, value, match, [...secrets, match]), value)
    })
  })

  it('returns false when no secret matches', () => {
    repeat('many-absent', 1000, (g, i) => {
      const secrets = secretList(g)
      const value = randomString(g, 30, unicodeChar)
      assert.equal(checkMany(g, i, value, 'absent-secret!', secrets), false)
    })
  })

  it('treats a one-element array like the plain secret', () => {
    repeat('many-one', 500, (g, i) => {
      const secret = randomSecret(g)
      const input = cookieSignature.sign(randomString(g, 20, asciiChar), secret)
      assert.equal(unsign(input, [secret]), unsign(input, secret), where(g, i, input, secret))
      assert.notEqual(unsign(input, [secret]), false, where(g, i, input, secret))
    })
  })
})

describe('malformed arguments', () => {
  const signed = cookieSignature.sign('value', 'k')
  const notStrings = [
    ['a number', 42], ['NaN', NaN], ['null', null], ['undefined', undefined],
    ['an object', {}], ['an array', [signed]], ['a Buffer', Buffer.from(signed)],
    ['a String object', new String(signed)], ['an object whose toString signs', {
      toString: () => signed,
    }], ['a Symbol', Symbol('x')], ['a function', () => signed], ['a BigInt', 10n],
    ['a boolean', true],
  ]

  for (const [label, input] of notStrings) {
    it(`unsign of ${label} gives false and does not throw`, () => {
      let result
      assert.doesNotThrow(() => {
        result = unsign(input, 'k')
      })
      assert.equal(result, false)
      assert.equal(unsign(input, ['a', 'k']), false)
    })
  }

  const badSecrets = [
    ['a number', 42], ['null', null], ['undefined', undefined], ['an object', {}],
    ['an empty array', []], ['an array with a number', ['k', 1]],
    ['an array with null', [null]], ['a Buffer', Buffer.from('k')], ['a Symbol', Symbol('k')],
    ['a function', () => 'k'],
  ]

  for (const [label, secret] of badSecrets) {
    it(`unsign with ${label} as secret throws ERR_INVALID_ARG`, () => {
      assert.throws(() => unsign(signed, secret), (err) => {
        assert.ok(err instanceof TypeError, `not a TypeError: ${err}`)
        assert.equal(err.code, 'ERR_INVALID_ARG')
        assert.match(err.message, /`secret`/)
        return true
      })
    })
  }

  it('sign refuses non-string values and secrets with ERR_INVALID_ARG', () => {
    for (const [, bad] of notStrings.filter(([, v]) => typeof v !== 'string')) {
      assert.throws(() => sign(bad, 'k'), { code: 'ERR_INVALID_ARG', message: /`value`/ })
    }
    for (const [, bad] of badSecrets.filter(([, v]) => !Array.isArray(v))) {
      assert.throws(() => sign('v', bad), { code: 'ERR_INVALID_ARG', message: /`secret`/ })
    }
  })
})

describe('lone UTF-16 surrogates (excluded from parity: native strings are UTF-8)', () => {
  const LONE = ['\uD800', '\uDBFF', '\uDC00', '\uDFFF']

  function loneValue(g) {
    const parts = [randomString(g, 8, unicodeChar), g.pick(LONE), randomString(g, 8, asciiChar)]
    if (g.int(0, 1)) parts.push(g.pick(LONE))
    return parts.join('')
  }

  it('sign never throws and signs the U+FFFD-replaced value', () => {
    repeat('lone-sign', 1000, (g, i) => {
      const value = loneValue(g)
      const secret = randomSecret(g)
      let signed
      assert.doesNotThrow(() => {
        signed = sign(value, secret)
      }, where(g, i, value, secret))
      const wellFormed = value.toWellFormed()
      assert.equal(signed, cookieSignature.sign(wellFormed, secret), where(g, i, value, secret))
      const refSig = cookieSignature.sign(value, secret).slice(-SIG_LEN)
      assert.equal(signed.slice(-SIG_LEN), refSig, where(g, i, value, secret))
    })
  })

  it('unsign never throws and accepts a value the reference signed', () => {
    repeat('lone-unsign', 1000, (g, i) => {
      const value = loneValue(g)
      const signed = cookieSignature.sign(value, 'k')
      let result
      assert.doesNotThrow(() => {
        result = unsign(signed, ['x', 'k'])
      }, where(g, i, value, 'k'))
      assert.ok([value, value.toWellFormed()].includes(result), where(g, i, value, 'k'))
    })
  })

  it('unsign of garbage with lone surrogates gives false', () => {
    repeat('lone-garbage', 1000, (g, i) => {
      const signed = cookieSignature.sign(randomString(g, 10, asciiChar), 'k')
      const at = g.int(0, signed.length)
      const input = signed.slice(0, at) + g.pick(LONE) + signed.slice(at)
      assert.equal(unsign(input, 'k'), false, where(g, i, input, 'k'))
    })
    assert.equal(unsign('\uD800.\uDC00', 'k'), false)
    assert.equal(unsign(LONE.join(''), 'k'), false)
  })

  it('secrets with lone surrogates still match cookie-signature', () => {
    repeat('lone-secret', 500, (g, i) => {
      const secret = randomString(g, 6, asciiChar) + g.pick(LONE)
      checkRoundTrip(g, i, randomString(g, 20, unicodeChar), secret)
    })
  })
})
