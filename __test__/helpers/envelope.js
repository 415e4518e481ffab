'use strict'

/**
 * Opens a stored value with node:crypto, from the layout documented in src/envelope.rs
 * (version, 4-byte key id, 12-byte nonce, AES-256-GCM ciphertext and 16-byte tag; the
 * associated data is the 5-byte header and the Redis key name): an independent reading of
 * what the store wrote.
 */

const crypto = require('node:crypto')

const HEADER = 5
const NONCE = 12
const TAG = 16

/** The plaintext of `value` (a Buffer read at `keyName`), sealed with the 32-byte `key`. */
function openEnvelope(value, keyName, key) {
  if (value[0] !== 1) throw new Error(`unknown envelope version ${value[0]}`)
  const nonce = value.subarray(HEADER, HEADER + NONCE)
  const sealed = value.subarray(HEADER + NONCE, value.length - TAG)
  const decipher = crypto.createDecipheriv('aes-256-gcm', key, nonce)
  decipher.setAAD(Buffer.concat([value.subarray(0, HEADER), Buffer.from(keyName)]))
  decipher.setAuthTag(value.subarray(value.length - TAG))
  return Buffer.concat([decipher.update(sealed), decipher.final()]).toString('utf8')
}

module.exports = { openEnvelope }
