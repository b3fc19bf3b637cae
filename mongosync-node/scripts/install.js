// npm's `install` step: builds what a clone lacks, so that `npm install ./mongosync-node`
// gives a working, typed package. It does nothing when the native module and `dist/` exist
// (a packed tarball ships both). `--release` (from `prepack`) rebuilds both for a tarball.
//
// The native module: `cargo build -p mongosync-node` (release; MONGOSYNC_NODE_PROFILE=debug
// for the debug build), copied to `mongosync.linux-x64-gnu.node`. `dist/`: `tsc`, with the
// package's own devDependencies installed from package-lock.json when they are missing.
'use strict'
const { execFileSync } = require('node:child_process')
const { copyFileSync, existsSync } = require('node:fs')
const { join } = require('node:path')

const pkg = join(__dirname, '..')
const nodeFile = join(pkg, 'mongosync.linux-x64-gnu.node')
const force = process.argv.includes('--release')
const run = (cmd, args) => execFileSync(cmd, args, { cwd: pkg, stdio: 'inherit' })

if (force || !existsSync(nodeFile)) {
  const profile = force ? 'release' : process.env.MONGOSYNC_NODE_PROFILE || 'release'
  console.error(`mongosync-node: building the native module (cargo, ${profile})`)
  run('cargo', ['build', '-p', 'mongosync-node', '--locked', ...(profile === 'release' ? ['--release'] : [])])
  const meta = JSON.parse(
    execFileSync('cargo', ['metadata', '--format-version', '1', '--no-deps'], { cwd: pkg, encoding: 'utf8' }),
  )
  copyFileSync(join(meta.target_directory, profile, 'libmongosync_node.so'), nodeFile)
}

if (force || !existsSync(join(pkg, 'dist', 'index.js'))) {
  if (!existsSync(join(pkg, 'node_modules', 'typescript'))) {
    run('npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund'])
  }
  run(process.execPath, [join(pkg, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'])
}
