# frozen_string_literal: true

# Issue 17's proof, the Ruby side: fibers under the async gem's Fiber
# scheduler (their waits go through the core's hub) and a plain thread (the
# GVL-free blocking wait) in one process. Driven by test_proof.py.
#
#   ruby -I <build>/bindings/ruby/lib proof_fiber.rb hold <lock> <counter> <log> <kind> <fibers> <per_fiber> <thread_holds>
#   ruby -I <build>/bindings/ruby/lib proof_fiber.rb cancel <lock> <kind>
#   ruby -I <build>/bindings/ruby/lib proof_fiber.rb storm <lock> <counter> <log> <kind> <fibers>
#
# hold: <fibers> fibers take the lock <per_fiber> times each (every other one
# with its own lock object, the rest sharing one: owners are fibers) while a thread takes it <thread_holds> times;
# every hold is logged as in proof_async.py ("S <t0_ns> <value> <holder>",
# "E <t1_ns> <holder>", one write(2) each on an O_APPEND descriptor).
#
# cancel: as proof_async.py's: a fiber waits, is stopped (Async::Task#stop
# raises Async::Stop into it) when the driver writes "cancel", the reactor
# keeps running; then the race (a holder of this process released and the
# waiter stopped in the same step).
#
# storm: as proof_async.py's; the fibers' waits end by Async::Task#with_timeout.
#
# Exit 77 with the reason when the async gem is missing (Debian: ruby-async).

begin
  require "async"
rescue LoadError
  puts "SKIP: the async gem is not installed (Debian: ruby-async)"
  exit 77
end
require "filelock"

DEADLINE = 60
WIDTH = 21

def mono_ns = Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond)

def say(line)
  $stdout.write("#{line}\n")
  $stdout.flush
end

def lock_class(kind) = kind == "soft" ? Filelock::SoftFileLock : Filelock::FileLock

# The read-increment-write under the lock, logged.
class Holds
  def initialize(counter, log)
    @counter = counter
    @log = File.open(log, File::WRONLY | File::APPEND | File::CREAT, 0o644)
    @log.sync = true
  end

  def run(who)
    t0 = mono_ns
    File.open(@counter, File::RDWR) do |f|
      value = Integer(f.pread(WIDTH, 0).strip, 10)
      @log.syswrite("S #{t0} #{value} #{who}\n")
      yield
      f.pwrite(format("%020d\n", value + 1), 0)
    end
    @log.syswrite("E #{mono_ns} #{who}\n")
  end
end

def hold(lock, counter, log, kind, fibers, per_fiber, thread_holds)
  cls = lock_class(kind)
  holds = Holds.new(counter, log)
  errors = Queue.new
  thread = Thread.new do
    obj = cls.new(lock, timeout: DEADLINE)
    thread_holds.times do
      obj.synchronize { holds.run("rb-thread") { sleep(rand * 0.0003) } }
      sleep(rand * 0.001)
    end
  rescue Exception => e # rubocop:disable Lint/RescueException
    errors << "thread: #{e.class}: #{e.message}"
  end
  # Every other fiber shares one lock object: owners are fibers, so sharing
  # it must not let two fibers in.
  shared = cls.new(lock, timeout: DEADLINE)
  Async do |task|
    fibers.times.map do |i|
      task.async do
        obj = i.odd? ? shared : cls.new(lock, timeout: DEADLINE)
        per_fiber.times do
          # The fiber sleeps inside the lock: the others run and must wait.
          obj.synchronize { holds.run("rb-fiber-#{i}") { sleep([0, 0.0002].sample) } }
        end
      rescue Exception => e # rubocop:disable Lint/RescueException
        errors << "fiber #{i}: #{e.class}: #{e.message}"
      end
    end.each(&:wait)
  end
  errors << "thread still running" unless thread.join(DEADLINE)
  return 0 if errors.empty?

  warn "proof_fiber.rb hold: #{errors.size.times.map { errors.pop }.join('; ')}"
  1
end

def expect_line(want)
  line = $stdin.gets
  raise "expected #{want.inspect} from the driver, got #{line.inspect}" unless line&.strip == want
end

def stop_waiter(task, lock)
  task.stop
  raise "the stopped wait is not over" unless task.stopped?
  raise "stopped, yet the lock is held" if lock.locked?
end

def cancel(lock, kind)
  cls = lock_class(kind)
  Async do |top|
    waiter = cls.new(lock)
    won = false
    task = top.async { waiter.acquire(timeout: DEADLINE); won = true }
    sleep 0.1
    raise "the waiter did not wait (won=#{won})" unless task.running?

    say "waiting"
    expect_line("cancel") # $stdin.gets parks this fiber only (io_wait)
    stop_waiter(task, waiter)
    raise "the stopped acquire won" if won

    say "cancelled"
    expect_line("next") # the reactor runs: a wait left in the hub would win now
    raise "a stopped wait won the lock later" if waiter.locked? || won

    holder = cls.new(lock, thread_local: false, timeout: 0)
    holder.acquire
    second = cls.new(lock)
    task = top.async { second.acquire(timeout: DEADLINE); won = true }
    sleep 0.05
    holder.release
    stop_waiter(task, second)
    sleep 0.3 # a late win would land here
    raise "the racing stop left the lock held" if second.locked? || won

    say "race-cancelled"
    $stdin.gets # EOF: the driver is done
  end.wait
  0
end

def storm(lock, counter, log, kind, fibers)
  cls = lock_class(kind)
  holds = Holds.new(counter, log)
  won = 0
  Async do |top|
    fibers.times.map do |i|
      top.async do |task|
        obj = cls.new(lock)
        sleep(rand * 0.2)
        begin
          task.with_timeout(rand * 0.05) { obj.acquire(timeout: DEADLINE) }
        rescue Async::TimeoutError
          raise "rb-storm-#{i}: timed out, yet holds the lock" if obj.locked?

          next
        end
        begin
          holds.run("rb-storm-#{i}") { sleep([0, 0.0005].sample) }
          won += 1
        ensure
          obj.release
        end
      end
    end.each(&:wait)
    sleep 0.3 # a win left behind would land here
    say "done #{won}"
    $stdin.gets # EOF: the driver checks from outside while this process lives
  end.wait
  0
end

case ARGV[0]
when "probe"
  exit 0
when "hold"
  exit hold(ARGV[1], ARGV[2], ARGV[3], ARGV[4], Integer(ARGV[5]), Integer(ARGV[6]), Integer(ARGV[7])) if ARGV.size == 8
when "storm"
  exit storm(ARGV[1], ARGV[2], ARGV[3], ARGV[4], Integer(ARGV[5])) if ARGV.size == 6
when "cancel"
  exit cancel(ARGV[1], ARGV[2]) if ARGV.size == 3
end
warn "usage: proof_fiber.rb hold <lock> <counter> <log> <kind> <fibers> <per_fiber> <thread_holds>"
warn "       proof_fiber.rb cancel <lock> <kind>"
warn "       proof_fiber.rb storm <lock> <counter> <log> <kind> <fibers>"
exit 2
