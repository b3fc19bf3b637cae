// The native module (private: import the package, not this file). Built by
// `scripts/install.js` or `scripts/test-node.sh` from the `mongosync-node` crate.
'use strict'
const { join } = require('node:path')

const file = join(__dirname, 'mongosync.linux-x64-gnu.node')
if (process.platform !== 'linux' || process.arch !== 'x64') {
  throw new Error(
    `mongosync-node has a native module for linux-x64-gnu only; this is ${process.platform}-${process.arch}`,
  )
}
try {
  module.exports = require(file)
} catch (e) {
  throw new Error(
    `mongosync-node: the native module ${file} could not be loaded; build it with \`node scripts/install.js\` (needs cargo)`,
    { cause: e },
  )
}
