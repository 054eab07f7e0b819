# frozen_string_literal: true

require "test_helper"

class TestThreads < Minitest::Test
  include FilelockTestSupport

  THREADS = 4
  ROUNDS = 50

  # A read-modify-write that loses updates without mutual exclusion: the
  # pass (Thread.pass) between read and write lets other threads in.
  def increment(file)
    n = File.read(file).to_i
    Thread.pass
    File.write(file, (n + 1).to_s)
  end

  def run_counter(&make_lock)
    counter = path("counter")
    File.write(counter, "0")
    threads = Array.new(THREADS) do |i|
      lock = make_lock.call(i)
      Thread.new { ROUNDS.times { lock.synchronize { increment(counter) } } }
    end
    threads.each { |t| join!(t) }
    assert_equal THREADS * ROUNDS, File.read(counter).to_i
  end

  def test_handle_per_thread
    run_counter { Filelock::FileLock.new(path) }
  end

  def test_one_thread_local_handle_shared_by_threads
    lock = Filelock::FileLock.new(path)
    run_counter { lock }
  end

  def test_singleton_handle_shared_by_threads
    run_counter { Filelock::FileLock.new(path, singleton: true) }
  end

  def test_soft_lock_threads
    run_counter { Filelock::SoftFileLock.new(path, poll_interval: 0.01) }
  end

  def test_other_threads_run_while_one_waits
    holder = Filelock::FileLock.new(path)
    t, release = hold_in_thread(holder)
    waiter_started = Queue.new
    waiter = Thread.new do
      waiter_started << true
      Filelock::FileLock.new(path).synchronize { :won }
    end
    pop!(waiter_started)
    # The waiter is blocked in the core: if it held the GVL this thread
    # could not count at all.
    ticks = 0
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + DEADLINE
    ticks += 1 until (ticks >= 1000 && waiter.status == "sleep") ||
                     Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
    assert_operator ticks, :>=, 1000
    assert waiter.alive?, "the waiter must still be waiting"
    release << true
    join!(t)
    assert_equal :won, join!(waiter)
  end

  def test_waiter_wins_after_release
    holder = Filelock::FileLock.new(path)
    t, release = hold_in_thread(holder)
    results = Queue.new
    waiters = Array.new(3) do
      Thread.new do
        lock = Filelock::FileLock.new(path, timeout: DEADLINE)
        lock.synchronize { results << lock.lock_counter }
      end
    end
    release << true
    join!(t)
    waiters.each { |w| join!(w) }
    assert_equal [1, 1, 1], Array.new(3) { results.pop }
  end

  def test_shared_handle_waits_for_the_acquiring_thread
    lock = Filelock::FileLock.new(path, thread_local: false)
    holder = Filelock::FileLock.new(path)
    t, release = hold_in_thread(holder)
    # Two threads wait on the same shared handle: one in the OS wait, the
    # other at the core's gate; both return once the holder lets go.
    waiters = Array.new(2) { Thread.new { lock.acquire(timeout: DEADLINE) } }
    sleep 0.1
    release << true
    join!(t)
    waiters.each { |w| join!(w) }
    assert_equal 2, lock.lock_counter
    lock.release(force: true)
    refute lock.locked?
  end
end
