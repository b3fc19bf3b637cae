// The example runs as a user would run it.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { test } from 'node:test'

test('examples/sync.mjs runs', () => {
  const dir = join(__dirname, '..', '..')
  const out = execFileSync(process.execPath, [join(dir, 'examples', 'sync.mjs')], { cwd: dir, encoding: 'utf8' })
  assert.match(out, /COMMITTED/)
  assert.match(out, /100 documents on both sides/)
})
