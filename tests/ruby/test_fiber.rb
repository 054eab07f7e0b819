# frozen_string_literal: true

# Waits under a Fiber scheduler park only the waiting fiber (through the
# core's wait hub and IO#wait_readable), so the thread's other fibers keep
# running; ownership is per fiber; an interrupted wait leaves nothing held.
# The scheduler is a minimal one of our own (mini_scheduler.rb: IO.select
# over the fibers' descriptors, timers, block/unblock), the interface Ruby
# documents for Fiber::SchedulerInterface.

require_relative "test_helper"
require_relative "mini_scheduler"

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

  # cancel_check under a scheduler: called by the waiting fiber at its
  # wake-ups; true ends the wait as a Timeout, what it raises propagates,
  # and either way nothing is held; false goes on waiting until the win.
  def test_cancel_check_under_the_scheduler
    path = File.join(@tmp, "x.lock")
    holder = Filelock::FileLock.new(path, thread_local: false)
    holder.acquire
    calls = 0
    outcomes = []
    with_scheduler do
      lock = Filelock::FileLock.new(path, thread_local: false)
      assert_raises(Filelock::Timeout) do
        lock.acquire(timeout: 30, cancel_check: -> { (calls += 1) >= 3 })
      end
      assert_equal 3, calls
      refute lock.locked?
      err = assert_raises(KeyError) { lock.acquire(timeout: 30, cancel_check: -> { raise KeyError, "from check" }) }
      assert_equal "from check", err.message
      refute lock.locked?
      assert_raises(TypeError) { lock.acquire(timeout: 30, cancel_check: 42) }
      # Other fibers run meanwhile; a check that says no lets the wait win.
      seen = 0
      releaser = Fiber.schedule do
        sleep 0.01 until seen >= 2
        holder.release
      end
      lock.acquire(timeout: 30, cancel_check: -> { seen += 1; false })
      outcomes << lock.locked?
      lock.release
      _ = releaser
    end
    assert_equal [true], outcomes
  end

  # on_acquired under a scheduler: the core runs the hook with the locked
  # descriptor once won (at once, or after a wait in the hub's dispatch);
  # a raising hook releases the lock and its exception reaches the waiting
  # fiber.
  def test_on_acquired_under_the_scheduler
    path = File.join(@tmp, "x.lock")
    fds = []
    locked_in_hook = []
    hook = lambda do |fd|
      fds << fd
      File.open(path) { |f| locked_in_hook << (f.flock(File::LOCK_EX | File::LOCK_NB) == false) }
    end
    with_scheduler do
      lock = Filelock::FileLock.new(path, thread_local: false, on_acquired: hook)
      lock.acquire # won at once
      lock.acquire # a re-entry runs no hook
      lock.release
      lock.release
      holder = Filelock::FileLock.new(path, thread_local: false)
      holder.acquire
      waiter = Fiber.schedule { lock.synchronize { fds << :won } }
      sleep 0.05
      assert waiter.alive?, "the fiber must still be waiting"
      holder.release # closes the file: the hub's dispatch wins, runs the hook
      sleep 0.01 while waiter.alive?
    end
    assert_equal 3, fds.size, fds.inspect
    assert_kind_of Integer, fds[0]
    assert_kind_of Integer, fds[1]
    assert_equal :won, fds[2]
    assert_equal [true, true], locked_in_hook
  end

  # A hook that ends the very wait it runs for (Fiber#raise on the waiting
  # fiber from inside the hub's dispatch: the fiber withdraws its wait while
  # the core is winning it): the fiber gets the exception, the win goes
  # back, nothing is held, and the process survives (the core freed that
  # wait under its own dispatch before).
  def test_on_acquired_ending_its_own_wait
    path = File.join(@tmp, "x.lock")
    outcome = []
    with_scheduler do
      waiter = nil
      hook = ->(_fd) { waiter.raise(RuntimeError, "stop from hook") }
      lock = Filelock::FileLock.new(path, thread_local: false, on_acquired: hook)
      holder = Filelock::FileLock.new(path, thread_local: false)
      holder.acquire
      waiter = Fiber.schedule do
        lock.acquire
        outcome << :won
      rescue RuntimeError => e
        outcome << e.message
      end
      sleep 0.05
      holder.release
      sleep 0.01 while waiter.alive?
      outcome << lock.locked?
    end
    assert_equal ["stop from hook", false], outcome
    assert system("flock", "-n", path, "true"), "the lock file must be free"
  end

  # A hook that sleeps or does IO runs to its end before any other fiber
  # runs (it is inside the hub's dispatch: another fiber withdrawing a wait
  # there would pull it from under the dispatch).
  def test_on_acquired_under_the_scheduler_never_yields_to_other_fibers
    path = File.join(@tmp, "x.lock")
    ticks = 0
    seen = []
    with_scheduler do
      lock = Filelock::FileLock.new(path, thread_local: false,
                                          on_acquired: ->(_fd) { t = ticks; sleep 0.1; seen << ticks - t })
      holder = Filelock::FileLock.new(path, thread_local: false)
      holder.acquire
      ticker = Fiber.schedule { 40.times { sleep 0.01; ticks += 1 } }
      waiter = Fiber.schedule { lock.synchronize { seen << :won } }
      sleep 0.05
      holder.release
      sleep 0.01 while waiter.alive?
      lock.synchronize { seen << :again } # won at once: the acquiring fiber runs it
      _ = ticker
    end
    assert_equal [0, :won, 0, :again], seen
  end

  def test_raising_on_acquired_under_the_scheduler_releases
    path = File.join(@tmp, "x.lock")
    calls = 0
    errors = []
    with_scheduler do
      lock = Filelock::FileLock.new(path, thread_local: false,
                                          on_acquired: ->(fd) { calls += 1; raise IOError, "refused #{fd}" })
      errors << assert_raises(IOError) { lock.acquire }
      refute lock.locked?
      holder = Filelock::FileLock.new(path, thread_local: false)
      holder.acquire
      waiter = Fiber.schedule do
        lock.acquire(timeout: 30)
      rescue IOError => e
        errors << e
      end
      sleep 0.05
      holder.release
      sleep 0.01 while waiter.alive?
      refute lock.locked?
      # Released: another handle wins at once.
      other = Filelock::FileLock.new(path, timeout: 0)
      other.acquire
      other.release
    end
    assert_equal 2, calls
    assert_equal 2, errors.size
    assert(errors.all? { |e| e.message.start_with?("refused ") })
  end

  # Releases holder once the block's tick count reaches 5, or at a 20 s
  # deadline (a wait that blocked the ticker: the assertion on the count
  # then fails, instead of the test hanging).
  def release_after_ticks(holder)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 20
    sleep 0.005 until yield >= 5 || Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
    holder.release
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
      # Released from another thread (only a close wakes it) once the
      # ticker has run 5 times during the wait: counted, not timed, since a
      # loaded machine may run it fewer times than 10 ms steps would give.
      Thread.new { release_after_ticks(holder) { ticks } }
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
    releaser = Thread.new { release_after_ticks(holder) { ticks } } # (as above)
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

  # cancel_check and on_acquired with the async gem's scheduler.
  def test_async_gem_cancel_check_and_on_acquired
    begin
      require "async"
    rescue LoadError
      skip "the async gem is not installed (Debian: ruby-async)"
    end
    path = File.join(@tmp, "x.lock")
    holder = Filelock::FileLock.new(path, thread_local: false)
    holder.acquire
    calls = 0
    timed_out = false
    fds = []
    Async do |task|
      task.async do
        Filelock::FileLock.new(path, timeout: 30).acquire(cancel_check: -> { (calls += 1) >= 3 })
      rescue Filelock::Timeout
        timed_out = true
      end.wait
      hooked = Filelock::FileLock.new(path, timeout: 30, on_acquired: ->(fd) { fds << fd })
      waiter = task.async { hooked.synchronize { fds << :won } }
      task.sleep 0.05
      holder.release
      waiter.wait
    end
    assert timed_out
    assert_equal 3, calls
    assert_equal 2, fds.size, fds.inspect
    assert_kind_of Integer, fds[0]
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
