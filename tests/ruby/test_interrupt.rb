# frozen_string_literal: true

require "test_helper"

# A waiting acquire ends promptly when Ruby interrupts the thread, and the
# lock state stays consistent: not held, counter 0, usable afterwards.
class TestInterrupt < Minitest::Test
  include FilelockTestSupport

  class Stop < StandardError; end

  def setup
    super
    @holder = Filelock::FileLock.new(path)
    @holder_thread, @release = hold_in_thread(@holder)
  end

  def teardown
    @release << true
    join!(@holder_thread)
    super
  end

  # Starts a thread that waits in `acquire_call`; returns it once it waits.
  def start_waiter(lock, &acquire_call)
    started = Queue.new
    t = Thread.new do
      # The interrupt is expected: join! re-raises it here.
      Thread.current.report_on_exception = false
      started << true
      acquire_call.call(lock)
      :acquired
    end
    pop!(started)
    sleep 0.05 until t.status == "sleep" || !t.alive?
    sleep 0.1 # well inside the wait
    t
  end

  def assert_consistent_and_usable(lock)
    refute lock.locked?
    assert_equal 0, lock.lock_counter
    @release << true
    join!(@holder_thread)
    assert_equal :ok, join!(Thread.new { lock.synchronize(timeout: DEADLINE) { :ok } })
    @holder_thread, @release = hold_in_thread(@holder)
  end

  def waits
    {
      forever: ->(l) { l.acquire },
      with_timeout: ->(l) { l.acquire(timeout: DEADLINE * 3) },
      synchronize: ->(l) { l.synchronize { flunk "must not run" } },
      poll_zero: ->(l) { l.acquire(timeout: DEADLINE * 3, poll_interval: 0) }
    }
  end

  def test_thread_raise
    waits.each do |name, call|
      lock = Filelock::FileLock.new(path)
      t = start_waiter(lock, &call)
      t.raise(Stop, name.to_s)
      e = assert_raises(Stop) { join!(t) }
      assert_equal name.to_s, e.message
      # The thread is dead, so its state is gone; check from here too.
      assert_consistent_and_usable(lock)
    end
  end

  def test_thread_raise_state_seen_by_the_waiter
    lock = Filelock::FileLock.new(path)
    t = start_waiter(lock) do |l|
      l.acquire
    rescue Stop
      Thread.current[:state] = [l.locked?, l.lock_counter]
    end
    t.raise(Stop)
    join!(t)
    assert_equal [false, 0], t[:state]
  end

  def test_thread_kill
    waits.each_value do |call|
      lock = Filelock::FileLock.new(path)
      ensured = Queue.new
      t = start_waiter(lock) do |l|
        call.call(l)
      ensure
        ensured << [l.locked?, l.lock_counter]
      end
      t.kill
      join!(t)
      refute t.alive?
      assert_equal [false, 0], pop!(ensured)
      assert_consistent_and_usable(lock)
    end
  end

  def test_timeout_timeout
    lock = Filelock::FileLock.new(path)
    t = Thread.new do
      Timeout.timeout(0.3) { lock.acquire }
    rescue ::Timeout::Error => e
      [e.class, lock.locked?, lock.lock_counter]
    end
    cls, locked, counter = join!(t)
    assert_equal ::Timeout::Error, cls
    refute locked
    assert_equal 0, counter
    assert_consistent_and_usable(lock)
  end

  def test_timeout_timeout_in_main_thread
    lock = Filelock::FileLock.new(path)
    assert_raises(::Timeout::Error) { Timeout.timeout(0.2) { lock.synchronize { flunk "must not run" } } }
    refute lock.locked?
  end

  def test_shared_handle_waiters
    lock = Filelock::FileLock.new(path, thread_local: false)
    a = start_waiter(lock, &:acquire)
    b = start_waiter(lock, &:acquire) # waits at the core's gate
    b.raise(Stop)
    assert_raises(Stop) { join!(b) }
    a.raise(Stop)
    assert_raises(Stop) { join!(a) }
    assert_consistent_and_usable(lock)
  end

  def test_soft_lock_wait
    soft_holder = Filelock::SoftFileLock.new(path("soft.lock"))
    soft_holder.acquire
    lock = Filelock::SoftFileLock.new(path("soft.lock"))
    t = start_waiter(lock, &:acquire)
    t.raise(Stop)
    assert_raises(Stop) { join!(t) }
    refute lock.locked?
    soft_holder.release
    lock.synchronize { assert lock.locked? }
  end

  def test_trap_handler_does_not_end_the_wait
    # A signal whose handler returns normally: the wait goes on and wins
    # once the holder releases (the handler ran in between).
    lock = Filelock::FileLock.new(path)
    ran = Queue.new
    old = Signal.trap(:USR1) { ran << true }
    begin
      result = Queue.new
      waiter = Thread.new { result << lock.synchronize(timeout: DEADLINE) { :won } }
      sleep 0.2
      Process.kill(:USR1, Process.pid)
      pop!(ran)
      assert waiter.alive?, "the wait must survive the signal"
      @release << true
      join!(@holder_thread)
      assert_equal :won, pop!(result)
      join!(waiter)
      @holder_thread, @release = hold_in_thread(@holder)
    ensure
      Signal.trap(:USR1, old)
    end
  end

  def test_main_thread_wait_interrupted_by_signal_handler_raise
    lock = Filelock::FileLock.new(path)
    old = Signal.trap(:USR2) { raise Stop, "from trap" }
    begin
      killer = Thread.new do
        sleep 0.2
        Process.kill(:USR2, Process.pid)
      end
      assert_raises(Stop) { lock.acquire }
      join!(killer)
      refute lock.locked?
    ensure
      Signal.trap(:USR2, old)
    end
  end
end
