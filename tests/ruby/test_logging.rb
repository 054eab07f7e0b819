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

  def test_messages_from_other_threads
    out = capture do
      threads = Array.new(3) { Thread.new { Filelock::FileLock.new(path).synchronize {} } }
      threads.each { |t| join!(t) }
    end
    assert_equal 3, out.scan(/acquired on/).size
    assert_equal 3, out.scan(/released on/).size
  end
end
