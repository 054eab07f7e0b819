# The gem of the Ruby binding: `gem build libfilelock.gemspec`, run in
# bindings/ruby of a checkout, packs libfilelock-<version>.gem.
#
# Name: `libfilelock`, because rubygems.org already has an unrelated
# `filelock` gem. The require path stays `filelock` (with `libfilelock` as
# an unambiguous alias); see README.md, "The gem's name".
#
# In a checkout this file first stages, into ext/filelock_ext/ (git-ignored),
# the C core (core/src, core/include/filelock.h) and the SWIG wrapper it
# generates from swig/ruby.i, plus ../../LICENSE here. So building the gem
# needs swig >= 4; installing it needs only a C compiler and Ruby's headers
# (extconf.rb compiles everything with mkmf), never SWIG, CMake or a network.
# Outside a checkout (e.g. an unpacked gem) the staged files are used as is.

require "fileutils"

here = __dir__
ext_dir = File.join(here, "ext", "filelock_ext")
checkout = File.expand_path("../..", here)
header = File.join(checkout, "core", "include", "filelock.h")

if File.file?(header) && File.file?(File.join(checkout, "swig", "ruby.i"))
  wrapper = File.join(ext_dir, "filelock_ruby_wrap.c")
  inputs = [header, *Dir[File.join(checkout, "swig", "*.i")]]
  # Regenerate the wrapper only when an input is newer (Bundler evaluates a
  # path gem's gemspec on every run).
  fresh = File.exist?(wrapper) && inputs.all? { |f| File.mtime(f) <= File.mtime(wrapper) }
  FileUtils.rm_f(Dir[File.join(ext_dir, "*.{c,h}")] - [wrapper])
  FileUtils.cp(header, ext_dir)
  Dir[File.join(checkout, "core", "src", "*.{c,h}")].each { |f| FileUtils.cp(f, ext_dir) }
  FileUtils.cp(File.join(checkout, "LICENSE"), here)
  unless fresh
    swig = %w[swig swig4.0].find { |s| system(s, "-version", out: File::NULL, err: File::NULL) }
    abort "libfilelock.gemspec: swig >= 4 is needed to build the gem (Debian: apt-get install swig)" unless swig
    ok = system(swig, "-ruby", "-Wall", "-I#{File.join(checkout, "core", "include")}",
                "-I#{File.join(checkout, "swig")}", "-o", wrapper, File.join(checkout, "swig", "ruby.i"))
    abort "libfilelock.gemspec: swig failed" unless ok
  end
end

# The one version source is FL_VERSION_* in filelock.h (staged above).
text = File.read(File.join(ext_dir, "filelock.h"))
version = %w[MAJOR MINOR PATCH].map do |part|
  text[/^#define FL_VERSION_#{part} (\d+)$/, 1] or abort "libfilelock.gemspec: no FL_VERSION_#{part} in filelock.h"
end.join(".")

Gem::Specification.new do |s|
  s.name = "libfilelock"
  s.version = version
  s.summary = "A platform-independent file lock (flock or soft marker) shared with C, Python and Lua"
  s.description = <<~DESC
    Ruby binding of libfilelock: Filelock::FileLock, Filelock::SoftFileLock and
    Filelock::ReadWriteLock with blocks, timeouts, waits that wake on release, release the
    GVL and can be interrupted, and Ruby's own exceptions. The lock excludes C, Python,
    Lua and flock(1) users of the same lock file.
  DESC
  s.authors = ["The filelock developers"]
  s.license = "MIT"
  s.homepage = "https://github.com/libfilelock/filelock"
  s.metadata = { "source_code_uri" => s.homepage }
  s.required_ruby_version = ">= 2.7"
  s.files = Dir.chdir(here) do
    Dir["lib/**/*.rb"] + Dir["ext/filelock_ext/*.{c,h,rb}"] + %w[LICENSE README.md]
  end
  s.require_paths = ["lib"]
  s.extensions = ["ext/filelock_ext/extconf.rb"]
end
