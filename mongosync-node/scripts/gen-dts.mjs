// Writes the native module's generated type definitions (`native.d.ts`) from the fragments
// napi-derive wrote while cargo compiled the crate with NAPI_TYPE_DEF_TMP_FOLDER set: what
// `napi build` does, without its `--target` flag that would compile the workspace a second
// time in another directory (TOOLCHAIN.md pitfall 6).
import { writeFile } from 'node:fs/promises'
import { generateTypeDef } from '@napi-rs/cli'

const [typeDefDir, out] = process.argv.slice(2)
const { dts } = await generateTypeDef({ typeDefDir, cwd: process.cwd() })
if (!dts.includes('class NativeSyncer')) {
  console.error(`no type definitions were generated from ${typeDefDir}`)
  process.exit(1)
}
await writeFile(out, dts)
