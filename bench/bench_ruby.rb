#!/usr/bin/env ruby
# frozen_string_literal: true

# Uncontended cost of the Ruby binding against Ruby's own flock, in one run:
#
#   ruby -I <build>/bindings/ruby/lib bench/bench_ruby.rb [iterations] [dir]
#
# Each figure is the best (lowest) of 5 rounds, in microseconds per
# iteration. The target (issue 4) is synchronize {} within 1.5x of the bare
# File.open + flock loop. Measured, never asserted.

require "filelock"
require "tmpdir"

iterations = Integer(ARGV[0] || 100_000)
dir = ARGV[1] || Dir.tmpdir
path = File.join(dir, "bench_ruby.#{Process.pid}.lock")

def best_us(iterations)
  Array.new(5) do
    t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    yield iterations
    (Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0) / iterations * 1e6
  end.min
end

lock = Filelock::FileLock.new(path)
soft = Filelock::SoftFileLock.new("#{path}.soft")
rw_path = "#{path}.rw"
rw = Filelock::ReadWriteLock.new(rw_path)
results = {
  "File.open + flock(LOCK_EX) (baseline)" => best_us(iterations) do |n|
    n.times { File.open(path, File::RDWR | File::CREAT) { |f| f.flock(File::LOCK_EX) } }
  end,
  "FileLock#synchronize {}" => best_us(iterations) { |n| n.times { lock.synchronize {} } },
  "FileLock#acquire + #release" => best_us(iterations) do |n|
    n.times do
      lock.acquire
      lock.release
    end
  end,
  # Issue 10: the read side, uncontended (a reader also passes the writers'
  # gate, "<path>.gate", so it costs two flock pairs).
  "File.open + flock(LOCK_SH) (shared baseline)" => best_us(iterations) do |n|
    n.times { File.open(rw_path, File::RDWR | File::CREAT) { |f| f.flock(File::LOCK_SH) } }
  end,
  "ReadWriteLock#acquire_read + #release" => best_us(iterations) do |n|
    n.times do
      rw.acquire_read
      rw.release
    end
  end,
  "ReadWriteLock#read {}" => best_us(iterations) { |n| n.times { rw.read {} } },
  "ReadWriteLock#write {}" => best_us(iterations) { |n| n.times { rw.write {} } },
  "SoftFileLock#synchronize {}" => best_us(iterations / 4) { |n| n.times { soft.synchronize {} } },
  "held FileLock#synchronize {} (recursion)" => lock.synchronize do
    best_us(iterations) { |n| n.times { lock.synchronize {} } }
  end
}
[path, rw_path, "#{rw_path}.gate"].each { |f| File.unlink(f) if File.exist?(f) }

base = results.values.first
puts "Ruby #{RUBY_VERSION}, libfilelock #{Filelock::VERSION}, #{iterations} iterations, best of 5"
results.each { |name, us| printf("%-46s %7.2f us  %5.2fx\n", name, us, us / base) }
ratio = results["FileLock#synchronize {}"] / base
printf("synchronize / baseline = %.2f (target <= 1.50)\n", ratio)
