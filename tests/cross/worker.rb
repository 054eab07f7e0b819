# frozen_string_literal: true

# Cross-language torture worker, Ruby edition (same protocol as worker.c).
#
#   ruby -I <build>/bindings/ruby/lib worker.rb hold <lockfile> <counter> <log> <count> \
#        <min_us> <max_us> <kind> <timeout>
#   ruby -I <build>/bindings/ruby/lib worker.rb cycles <lockfile> <n> <kind>
#
# Times are Process.clock_gettime(CLOCK_MONOTONIC, :nanosecond), the clock
# every worker uses.

require "filelock"

def mono_ns
  Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond)
end

def lock_class(kind)
  kind == "soft" ? Filelock::SoftFileLock : Filelock::FileLock
end

def hold(args)
  lockfile, counter, log = args[0], args[1], args[2]
  count, min_us, max_us = args[3].to_i, args[4].to_i, args[5].to_i
  lock = lock_class(args[6]).new(lockfile, timeout: Float(args[7]))
  logf = File.open(log, File::WRONLY | File::APPEND | File::CREAT, 0o644)
  logf.sync = true # one write(2) per line: survives SIGKILL
  i = 0
  while count.zero? || i < count
    i += 1
    lock.synchronize do
      t0 = mono_ns
      File.open(counter, File::RDWR) do |f|
        value = Integer(f.pread(21, 0).strip, 10)
        logf.write("S #{t0} #{value}\n")
        sleep(rand(min_us..max_us) / 1e6)
        f.pwrite(format("%020d\n", value + 1), 0)
      end
      logf.write("E #{mono_ns}\n")
    end
    sleep(rand(0..500) / 1e6)
  end
  0
end

def count_fds
  Dir.children("/proc/self/fd").size - 1 # the listing's own descriptor
end

def rss_kb
  File.foreach("/proc/self/status") { |l| return l.split[1].to_i if l.start_with?("VmRSS:") }
  -1
end

def cycles(args)
  path, n, kind = args[0], Integer(args[1]), args[2]
  cls = lock_class(kind)
  lock = cls.new(path, timeout: 10)
  slock = Filelock::SoftFileLock.new("#{path}.soft", timeout: 10)
  warm = n / 10
  fd_warm = rss_warm = 0
  n.times do |i|
    if i == warm
      GC.start
      fd_warm = count_fds
      rss_warm = rss_kb
    end
    lock.synchronize {}
    next unless (i % 10).zero?

    cls.new(path, timeout: 10).synchronize {}
    slock.synchronize {}
  end
  GC.start
  puts "RES #{fd_warm} #{count_fds} #{rss_warm} #{rss_kb}"
  0
end

if ARGV.size == 9 && ARGV[0] == "hold"
  exit hold(ARGV[1..])
elsif ARGV.size == 4 && ARGV[0] == "cycles"
  exit cycles(ARGV[1..])
else
  warn "usage: worker.rb hold <lockfile> <counter> <log> <count> <min_us> <max_us> <kind> <timeout>"
  warn "       worker.rb cycles <lockfile> <n> <kind>"
  exit 2
end
