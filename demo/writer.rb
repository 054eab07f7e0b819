#!/usr/bin/env ruby
# frozen_string_literal: true

# Demo writer on our Ruby binding: appends COUNT lines to FILE, each under
# the lock LOCKFILE, by a deliberately fragile read-modify-write (the
# protocol every demo writer follows, see demo/README.md):
#
#   line "<tag> <seq> <tag>/<seq>/its-over-anakin-i-have-the-high-ground", seq 1..COUNT
#   under the lock: read the whole file, pause ~0.5 ms, write it back with
#   the new line in two writes split in the middle of that line, ~0.2 ms
#   apart; then pause 1-4 ms outside the lock.
#
# Without the lock, concurrent writers lose each other's lines or tear
# them; with it, every line of every writer survives intact.
#
#   ruby -I <build>/bindings/ruby/lib demo/writer.rb FILE LOCKFILE COUNT TAG [--soft] [--no-lock]

require "filelock"

TEXT = "its-over-anakin-i-have-the-high-ground"

def usage
  warn "usage: writer.rb <file> <lockfile> <count> <tag> [--soft] [--no-lock]"
  exit 2
end

def append_line(path, line)
  File.open(path, File::RDWR | File::CREAT | File::BINARY, 0o666) do |f|
    content = f.read || +""
    sleep 0.0005 # widen the window a missing lock would expose
    data = content + line
    cut = data.bytesize - line.bytesize / 2 # in the middle of the new line
    f.pwrite(data.byteslice(0, cut), 0)
    sleep 0.0002
    f.pwrite(data.byteslice(cut..), cut)
  end
end

flags, args = ARGV.partition { |a| a.start_with?("--") }
usage unless args.size == 4 && args[2] =~ /\A\d+\z/ && (flags - ["--soft", "--no-lock"]).empty?
file, lock_file, count, tag = args

# A demo must fail rather than hang: give up after 30 s.
lock_class = flags.include?("--soft") ? Filelock::SoftFileLock : Filelock::FileLock
lock = lock_class.new(lock_file, timeout: 30)
use_lock = !flags.include?("--no-lock")

begin
  (1..count.to_i).each do |seq|
    line = "#{tag} #{seq} #{tag}/#{seq}/#{TEXT}\n".b
    if use_lock
      lock.synchronize { append_line(file, line) }
    else
      append_line(file, line)
    end
    sleep 0.001 + rand * 0.003 # let the writers take turns
  end
rescue Filelock::Timeout, SystemCallError, IOError, Filelock::Error => e
  warn "writer.rb #{tag}: #{e.class}: #{e.message}"
  exit 1
end
