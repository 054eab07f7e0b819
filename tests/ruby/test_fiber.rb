# frozen_string_literal: true

# Waits under a Fiber scheduler park only the waiting fiber (through the
# core's wait hub and IO#wait_readable), so the thread's other fibers keep
# running; ownership is per fiber; an interrupted wait leaves nothing held.
# The scheduler is a minimal one written here (IO.select over the fibers'
# descriptors, timers, block/unblock), the interface Ruby documents for
# Fiber::SchedulerInterface.

require_relative "test_helper"

# A minimal Fiber scheduler: enough for io_wait, sleep and Thread::Queue.
class MiniScheduler
  def initialize
    @readers = {}  # fiber => io
    @timers = {}   # fiber => wake-up time
    @ready = []
    @blocked = 0
    @lock = Thread::Mutex.new
    @wake_r, @wake_w = IO.pipe
  end

  def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)

  def run
    while @readers.any? || @timers.any? || @blocked.positive? || @ready.any?
      timeout = @ready.empty? ? (@timers.values.min&.-(now))&.clamp(0, nil) : 0
      readable, = IO.select(@readers.values.uniq + [@wake_r], nil, nil, timeout)
      @wake_r.read_nonblock(64, exception: false) if readable&.include?(@wake_r)
      due = @timers.select { |_, t| t <= now }.keys
      woken = @readers.select { |_, io| readable&.include?(io) }.keys | due
      ready = @lock.synchronize { r = @ready; @ready = []; r }
      (woken | ready).each do |f|
        @readers.delete(f)
        @timers.delete(f)
        f.resume if f.alive?
      end
    end
  end

  def io_wait(io, events, timeout)
    f = Fiber.current
    @readers[f] = io
    @timers[f] = now + timeout if timeout
    Fiber.yield
    events
  end

  def kernel_sleep(duration = nil)
    block(:sleep, duration)
  end

  def block(_blocker, timeout = nil)
    f = Fiber.current
    if timeout
      @timers[f] = now + timeout
    else
      @blocked += 1
    end
    begin
      Fiber.yield
    ensure
      @blocked -= 1 unless timeout
    end
    true
  end

  def unblock(_blocker, fiber)
    @lock.synchronize { @ready << fiber }
    @wake_w.write_nonblock(".", exception: false)
  end

  def fiber(&block)
    f = Fiber.new(blocking: false, &block)
    f.resume
    f
  end

  def close
    run
    @wake_r.close
    @wake_w.close
  end
end

class TestFiber < Minitest::Test
  include FilelockTestSupport

  # Runs the block as the root of a thread with the mini scheduler.
  def with_scheduler(&block)
    errors = []
    t = Thread.new do
      Fiber.set_scheduler(MiniScheduler.new)
      Fiber.schedule do
        block.call
      rescue Exception => e # rubocop:disable Lint/RescueException
        errors << e
      end
    end
    assert t.join(DEADLINE), "the scheduler thread did not finish"
    raise errors.first unless errors.empty?
  end

  # cancel_check and on_acquired are Ruby blocks the core would call inside
  # the hub's dispatch: refused under a scheduler (ArgumentError naming the
  # path), nothing held; without a scheduler both work (test_api16).
  def test_blocks_refused_under_the_scheduler
    path = File.join(@tmp, "x.lock")
    errors = []
    held = []
    with_scheduler do
      lock = Filelock::FileLock.new(path, thread_local: false)
      errors << assert_raises(ArgumentError) { lock.acquire(cancel_check: -> { false }) }
      held << lock.locked?
      hooked = Filelock::FileLock.new(path, thread_local: false, on_acquired: ->(_fd) {})
      errors << assert_raises(ArgumentError) { hooked.acquire }
      held << hooked.locked?
      lock.acquire # no blocks: the hub path
      held << lock.locked?
      lock.release
    end
    assert_match(/cancel_check is not supported under a Fiber scheduler.*x\.lock/, errors[0].message)
    assert_match(/on_acquired is not supported under a Fiber scheduler.*x\.lock/, errors[1].message)
    assert_equal [false, false, true], held
  end

  def test_other_fibers_run_while_one_waits
    path = File.join(@tmp, "x.lock")
    holder = Filelock::FileLock.new(path, thread_local: false)
    holder.acquire
    ticks = 0
    got = nil
    with_scheduler do
      ticker = Fiber.schedule do
        50.times do
          sleep 0.01
          ticks += 1
        end
      end
      waiter = Fiber.schedule do
        lock = Filelock::FileLock.new(path, timeout: 10)
        lock.synchronize { got = [ticks, lock.locked?] }
      end
      # Released from another thread after a while: only a close wakes it.
      Thread.new { sleep 0.3; holder.release }
      _ = [ticker, waiter]
    end
    refute_nil got, "the waiting fiber never won the lock"
    assert got[1]
    assert_operator got[0], :>=, 5, "the ticker fiber ran #{got[0]} times during the wait"
  end

  def test_ownership_is_per_fiber
    path = File.join(@tmp, "x.lock")
    with_scheduler do
      a = Filelock::FileLock.new(path)
      b = Filelock::FileLock.new(path)
      a.acquire
      assert a.locked?
      # The same fiber waiting forever through another object: a deadlock.
      assert_raises(Filelock::DeadlockError) { b.acquire }
      order = []
      f = Fiber.schedule do
        refute a.locked?, "another fiber does not hold what this one holds"
        b.synchronize { order << :b }
      end
      order << :a
      a.release
      sleep 0.05 while f.alive?
      assert_equal %i[a b], order
    end
  end

  def test_timeout_and_interrupt_leave_nothing
    path = File.join(@tmp, "x.lock")
    holder = Filelock::FileLock.new(path, thread_local: false)
    holder.acquire
    with_scheduler do
      lock = Filelock::FileLock.new(path)
      assert_raises(Filelock::Timeout) { lock.acquire(timeout: 0.1) }
      refute lock.locked?
      outcome = nil
      victim = Fiber.schedule do
        lock.acquire
        outcome = :won
      rescue RuntimeError
        outcome = :interrupted
      end
      sleep 0.05
      assert victim.alive?, "the fiber must still be waiting"
      victim.raise(RuntimeError, "stop")
      assert_equal :interrupted, outcome
    end
    holder.release
    other = Filelock::FileLock.new(path, timeout: 0)
    other.acquire
    other.release
  end

  # The same with the async gem's scheduler (Debian: ruby-async), when
  # installed.
  def test_async_gem_tasks_keep_running_while_one_waits
    begin
      require "async"
    rescue LoadError
      skip "the async gem is not installed (Debian: ruby-async)"
    end
    path = File.join(@tmp, "x.lock")
    holder = Filelock::FileLock.new(path, thread_local: false)
    holder.acquire
    ticks = 0
    got = nil
    releaser = Thread.new { sleep 0.3; holder.release }
    Async do |task|
      task.async do
        50.times do
          sleep 0.01
          ticks += 1
        end
      end
      task.async do
        Filelock::FileLock.new(path, timeout: 10).synchronize { got = ticks }
      end
    end
    releaser.join
    refute_nil got, "the waiting task never won the lock"
    assert_operator got, :>=, 5, "the ticker task ran #{got} times during the wait"
  end

  # A ReadWriteLock writer waits in its fiber while readers hold the lock;
  # a reader that comes after it waits behind it (the writers' gate).
  def test_read_write_lock_under_the_scheduler
    path = File.join(@tmp, "rw.lock")
    order = []
    with_scheduler do
      rw = Filelock::ReadWriteLock.new(path)
      rw.acquire_read
      writer = Fiber.schedule { rw.write { order << :writer } }
      late = Fiber.schedule { rw.read { order << :late_reader } }
      sleep 0.1
      assert_empty order, "the writer waits for the reader, the late reader for the writer"
      order << :first_reader_out
      rw.release
      sleep 0.05 while writer.alive? || late.alive?
    end
    assert_equal %i[first_reader_out writer late_reader], order
  end
end
