# frozen_string_literal: true

# The Ruby worker of the benchmark matrix (bench/matrix.sh):
#
#   ruby -I <build>/bindings/ruby/lib rb_worker.rb serve DIR
#   ruby -I <build>/bindings/ruby/lib rb_worker.rb contend CASE LOCK DATA ITERS
#
# Same line protocol as mx_c.c (see matrix.py for the driver's side).

require "filelock"

CTR_LEN = 20

def mono
  Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond)
end

def out(text)
  $stdout.write("#{text}\n")
  $stdout.flush
end

def serve(dir)
  lock = Filelock::FileLock.new(File.join(dir, "rb.lock"))
  reent = Filelock::FileLock.new(File.join(dir, "rb_reent.lock"))
  soft = Filelock::SoftFileLock.new(File.join(dir, "rb_soft.lock"))
  new_path = File.join(dir, "rb_new.lock")
  floor_path = File.join(dir, "rb_floor.lock")
  floor_file = File.open(floor_path, File::RDWR | File::CREAT)
  cases = {
    "sync" => ->(n) { n.times { lock.synchronize {} } },
    "acq_rel" => lambda do |n|
      n.times do
        lock.acquire
        lock.release
      end
    end,
    "soft" => ->(n) { n.times { soft.synchronize {} } },
    "reentrant" => ->(n) { n.times { reent.synchronize {} } },
    "construct" => ->(n) { n.times { Filelock::FileLock.new(new_path) } },
    # Ruby's own File#flock, with the same system calls as the C floor.
    "floor" => lambda do |n|
      n.times do
        File.open(floor_path, File::RDWR | File::CREAT) do |f|
          f.flock(File::LOCK_EX)
          f.flock(File::LOCK_UN)
        end
      end
    end,
    "floor_pair" => lambda do |n|
      n.times do
        floor_file.flock(File::LOCK_EX)
        floor_file.flock(File::LOCK_UN)
      end
    end
  }
  out("ready ruby #{RUBY_VERSION} libfilelock #{Filelock::VERSION}")
  while (line = $stdin.gets)
    break if line.start_with?("quit")

    name, n = line.split
    fn = cases.fetch(name)
    reent.acquire if name == "reentrant"
    t = mono
    fn.call(Integer(n))
    t = mono - t
    reent.release if name == "reentrant"
    out(t.to_s)
  end
end

def contend(kase, path, data_path, iters)
  data = File.open(data_path, File::RDWR)
  lock = (kase == "soft" ? Filelock::SoftFileLock : Filelock::FileLock).new(path)
  timeout = kase == "timed" ? 60 : -1
  waits = Array.new(iters, 0.0)
  seq = Array.new(iters, 0)
  out("ready")
  $stdin.gets
  iters.times do |i|
    t0 = mono
    lock.acquire(timeout: timeout)
    waits[i] = (mono - t0) / 1e3
    v = Integer(data.pread(CTR_LEN, 0), 10)
    seq[i] = v
    data.pwrite(format("%0#{CTR_LEN}d", v + 1), 0)
    lock.release
  end
  out("done")
  out("waits #{waits.map { |w| format('%.1f', w) }.join(' ')}")
  out("seq #{seq.join(' ')}")
end

case ARGV[0]
when "serve" then serve(ARGV[1])
when "contend" then contend(ARGV[1], ARGV[2], ARGV[3], Integer(ARGV[4]))
else abort("rb_worker: unknown mode #{ARGV[0].inspect}")
end
