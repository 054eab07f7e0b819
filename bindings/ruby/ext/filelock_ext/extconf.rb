# Builds the extension filelock_ext from the SWIG-generated wrapper and the
# C core's sources, which the gem carries next to this file (staged there by
# libfilelock.gemspec).
require "mkmf"

# The core is C99 + POSIX; Ruby's headers need GNU extensions, so gnu99.
append_cflags("-std=gnu99")
append_cflags("-fvisibility=hidden")
append_cflags("-pthread")

abort "libfilelock needs pthreads" unless have_library("pthread")
have_library("m")
abort "libfilelock needs ruby/thread.h" unless have_header("ruby/thread.h")
%w[filelock.h filelock_ruby_wrap.c lock.c].each do |f|
  next if File.file?(File.join($srcdir, f))
  abort "libfilelock: #{f} is missing from #{$srcdir}: build the gem with `gem build libfilelock.gemspec` in bindings/ruby"
end

# Every C file here except the Windows backend (win32.c) and the other
# platform half (core/CMakeLists.txt: linux.c and fsprobe.c on Linux,
# generic.c elsewhere; both define the fl__plat_* functions).
other_half = RUBY_PLATFORM.include?("linux") ? %w[generic.c] : %w[linux.c fsprobe.c]
$srcs = Dir.glob(File.join($srcdir, "*.c")).map { |f| File.basename(f) }
                .reject { |f| f.start_with?("win") || other_half.include?(f) }
$objs = $srcs.map { |f| f.sub(/\.c\z/, ".o") }

create_makefile("filelock_ext")
