# Builds the extension filelock_ext from the SWIG-generated wrapper and the
# C core sources that the gem carries next to this file (see build_gem.rb).
require "mkmf"

# The core is C99 + POSIX; Ruby's headers need GNU extensions, so gnu99.
append_cflags("-std=gnu99")
append_cflags("-fvisibility=hidden")
append_cflags("-pthread")

abort "libfilelock needs pthreads" unless have_library("pthread")
have_library("m")
abort "libfilelock needs ruby/thread.h" unless have_header("ruby/thread.h")

# Every C file here except other platforms' backends (win32*.c).
$srcs = Dir.glob(File.join($srcdir, "*.c")).map { |f| File.basename(f) }
                .reject { |f| f.start_with?("win") }
$objs = $srcs.map { |f| f.sub(/\.c\z/, ".o") }

create_makefile("filelock_ext")
