#!/usr/bin/env bash
# The gem, built and installed the documented way:
#   cd bindings/ruby && gem build libfilelock.gemspec      (in a copy of the checkout)
#   gem install --local libfilelock-<v>.gem                 (scratch GEM_HOME, offline)
# then a plain `ruby -e 'require "filelock"'` (no -I) loads the installed
# copy, and the API, error, owner and read/write suites pass against it.
#
#   gem_install.sh SOURCE SCRATCH
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"
source=$1 scratch=$2
for tool in ruby gem swig cc git; do
    command -v "$tool" >/dev/null || { echo "SKIPPED: $tool not found"; exit 77; }
done

rm -rf "$scratch"
fl_copy_source "$source" "$scratch/src"
version=$(sed -n 's/^#define FL_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)$/\2/p' \
    "$scratch/src/core/include/filelock.h" | paste -sd.)
(cd "$scratch/src/bindings/ruby" && gem build libfilelock.gemspec) >"$scratch/build.log" 2>&1 ||
    fail "gem build: $(cat "$scratch/build.log")"
gemfile=$scratch/src/bindings/ruby/libfilelock-$version.gem
[ -f "$gemfile" ] || fail "no libfilelock-$version.gem: $(cat "$scratch/build.log")"
contents=$(tar -xOf "$gemfile" data.tar.gz | tar -tzf -)
for f in LICENSE README.md lib/filelock.rb lib/libfilelock.rb ext/filelock_ext/extconf.rb \
    ext/filelock_ext/filelock_ruby_wrap.c ext/filelock_ext/lock.c ext/filelock_ext/filelock.h; do
    grep -qx "$f" <<<"$contents" || fail "$f missing from the gem: $contents"
done
spec=$(gem spec "$gemfile" --ruby)
grep -q '"MIT"' <<<"$spec" || fail "no MIT licence in the gem's metadata"
echo "built $(basename "$gemfile"): $(wc -l <<<"$contents") files"

mkdir -p "$scratch/home"
# The system's gem path stays visible for minitest (a bundled gem).
system_path=$(ruby -e 'print Gem.path.join(":")')
export GEM_HOME=$scratch/home GEM_PATH=$scratch/home:$system_path
unset RUBYLIB RUBYOPT || true
gem install --local --no-document "$gemfile" >"$scratch/install.log" 2>&1 ||
    fail "gem install: $(cat "$scratch/install.log")"

cd "$scratch"
ruby -e '
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
  abort "version #{Filelock::VERSION}" unless Filelock::VERSION == ARGV[1]
  puts "require \"filelock\": #{Filelock::VERSION} from #{feats.join(" ")}"
' "$scratch" "$version"
ruby -e 'require "libfilelock"; Filelock::FileLock.new(ARGV[0], timeout: 0).synchronize { }' "$scratch/alias.lock"
echo 'require "libfilelock": OK'

# The suites against the installed gem (only tests/ruby on -I).
for t in api errors owner read_write; do
    ruby -I "$source/tests/ruby" "$source/tests/ruby/test_$t.rb" >"$scratch/test_$t.log" 2>&1 ||
        fail "test_$t.rb against the gem: $(tail -30 "$scratch/test_$t.log")"
    tail -1 "$scratch/test_$t.log"
done
echo OK
