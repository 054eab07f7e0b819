# frozen_string_literal: true

require "test_helper"
require "logger"
require "stringio"

class TestLogging < Minitest::Test
  include FilelockTestSupport

  def capture
    io = StringIO.new
    Filelock.logger = Logger.new(io)
    yield
    io.string
  ensure
    Filelock.logger = nil
  end

  def test_off_by_default
    assert_nil Filelock.logger
  end

  def test_each_step_is_logged_at_debug
    lock = Filelock::FileLock.new(path)
    out = capture { lock.synchronize {} }
    assert_match(/DEBUG -- : Attempting to acquire lock \d+ on #{Regexp.escape(path)}$/, out)
    assert_match(/DEBUG -- : Lock \d+ acquired on #{Regexp.escape(path)}$/, out)
    assert_match(/Attempting to release lock \d+ on #{Regexp.escape(path)}$/, out)
    assert_match(/Lock \d+ released on #{Regexp.escape(path)}$/, out)
    # In order, each once.
    steps = out.lines.map { |l| l[/-- : (.*) \d+ (?:acquired |released )?on /, 1] }
    assert_equal ["Attempting to acquire lock", "Lock", "Attempting to release lock", "Lock"], steps, out
  end

  def test_wait_and_timeout_are_logged
    holder = Filelock::FileLock.new(path)
    t, release = hold_in_thread(holder)
    lock = Filelock::FileLock.new(path)
    out = capture { assert_raises(Filelock::Timeout) { lock.acquire(timeout: 0.1) } }
    assert_match(/Lock \d+ not acquired on .*, waiting [\d.]+ seconds \.\.\./, out)
    assert_match(/Timeout on acquiring lock \d+ on /, out)
    out = capture { assert_raises(Filelock::Timeout) { lock.acquire(blocking: false) } }
    assert_match(/Failed to immediately acquire lock \d+ on /, out)
    release << true
    join!(t)
  end

  def test_logging_off_again
    lock = Filelock::FileLock.new(path)
    io = StringIO.new
    Filelock.logger = Logger.new(io)
    Filelock.logger = nil
    lock.synchronize {}
    assert_equal "", io.string
  end

  def test_logger_level_is_respected
    io = StringIO.new
    Filelock.logger = Logger.new(io, level: :info)
    Filelock::FileLock.new(path).synchronize {}
    assert_equal "", io.string
  end

  def test_failing_logger_does_not_break_locking
    broken = Object.new
    def broken.debug(_msg)
      raise IOError, "log device closed"
    end
    Filelock.logger = broken
    lock = Filelock::FileLock.new(path)
    assert_equal :ok, lock.synchronize { :ok }
    refute lock.locked?
  end

  # Each thread's messages arrive, once each. The threads may or may not
  # contend, so a waiter may add "Lock <id> not acquired on ..., waiting";
  # only the "Lock <id> acquired on" step is counted (a bare /acquired on/
  # also matched the waiting message, and the test failed whenever two
  # threads happened to overlap).
  def test_messages_from_other_threads
    out = capture do
      threads = Array.new(3) { Thread.new { Filelock::FileLock.new(path).synchronize {} } }
      threads.each { |t| join!(t) }
    end
    acquired = out.scan(/-- : Lock (\d+) acquired on /).flatten
    released = out.scan(/-- : Lock (\d+) released on /).flatten
    assert_equal 3, acquired.uniq.size, out
    assert_equal acquired.sort, released.sort, out
  end

  # The contended case made certain: a wait that timed out, then a win.
  # The waiting message ("Lock <id> not acquired on ..., waiting") must not
  # be taken for an acquire: one "acquired" step for one win.
  def test_waiting_is_not_acquiring
    holder = Filelock::FileLock.new(path)
    t, release = hold_in_thread(holder)
    lock = Filelock::FileLock.new(path)
    out = capture do
      waiter = Thread.new { assert_raises(Filelock::Timeout) { lock.acquire(timeout: 0.2) } }
      join!(waiter)
      release << true
      join!(t)
      join!(Thread.new { lock.synchronize(timeout: DEADLINE) {} })
    end
    id = lock.__send__(:lock_id)
    mine = out.lines.grep(/ #{id} /).map { |l| l[/-- : (.*?) #{id} /, 1] }
    waits = mine.count("Lock") - 2 # "Lock <id> acquired", "Lock <id> released"
    assert_operator waits, :>=, 1, out
    assert_equal ["Attempting to acquire lock"] + ["Lock"] * waits +
                 ["Timeout on acquiring lock", "Attempting to acquire lock", "Lock",
                  "Attempting to release lock", "Lock"], mine, out
    assert_equal 1, out.scan(/-- : Lock #{id} acquired on /).size, out
    assert_equal waits, out.scan(/-- : Lock #{id} not acquired on .*, waiting /).size, out
  end

  # A logger that raises something deliver_log does not rescue (not a
  # StandardError) stops the delivery of one call's messages; the rest must
  # be dropped, not left in the thread's queue to surface in a later call
  # (or in a later Ruby thread running on the same native thread).
  def test_undelivered_messages_never_surface_later
    boom = Class.new(Exception) # rubocop:disable Lint/InheritException
    raising = Object.new
    raising.define_singleton_method(:debug) { |_msg| raise boom, "logger broke" }
    lock = Filelock::FileLock.new(path)
    Filelock.logger = raising
    assert_raises(boom) { lock.acquire }
    assert lock.locked?, "the lock was won before the logger raised"
    out = capture { lock.release }
    refute_match(/acquire/, out)
    assert_match(/\AD, .* Attempting to release lock \d+ on .*\n.*Lock \d+ released on /, out)
    refute lock.locked?
  end
end
