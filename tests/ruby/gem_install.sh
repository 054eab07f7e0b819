#!/bin/sh
# Proves the gem: installs libfilelock-<v>.gem offline into a private
# GEM_HOME (compiling the extension with mkmf), then runs the API test
# suite against the installed copy, with nothing from the build tree on
# the load path.
#
#   gem_install.sh <ruby> <gem file> <scratch dir> <tests/ruby dir>
set -eu
ruby=$1 gem=$2 scratch=$3 tests=$4

rm -rf "$scratch"
mkdir -p "$scratch/home"
# The system's gem path stays visible for minitest (a bundled gem).
system_path=$("$ruby" -e 'print Gem.path.join(":")')
GEM_HOME=$scratch/home
GEM_PATH=$scratch/home:$system_path
export GEM_HOME GEM_PATH
unset RUBYLIB RUBYOPT || true

# --local: never contact a server.
"$ruby" -S gem install --local --no-document --install-dir "$GEM_HOME" "$gem"

# The copy that loads must be the installed one.
"$ruby" -e '
  require "filelock"
  home = File.realpath(ENV.fetch("GEM_HOME"))
  feats = $LOADED_FEATURES.grep(%r{/filelock(_ext\.[^/]+|\.rb)\z})
  abort "filelock not loaded from the gem: #{feats}" unless feats.size == 2 && feats.all? { |f| File.realpath(f).start_with?(home) }
  lock = Filelock::FileLock.new(File.join(ARGV[0], "gem.lock"), timeout: 1)
  lock.synchronize { abort "not held" unless lock.locked? }
  begin
    Filelock::FileLock.new(ARGV[0]).acquire
    abort "no error for a directory"
  rescue Errno::EISDIR
  end
  puts "gem OK: #{feats.join(" ")}"
' "$scratch"

# The API, error, owner and read/write suites against the installed gem (only tests/ruby on -I).
for t in api errors owner read_write; do
  "$ruby" -I "$tests" "$tests/test_$t.rb"
done
