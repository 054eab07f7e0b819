# frozen_string_literal: true

# The pure-Python filelock 3.15-3.32 API in Ruby's idiom: acquire(cancel_check:),
# FileLock.new(path, on_acquired:), Filelock.lock_descriptor / unlock_descriptor.

require "test_helper"
require "timeout"

class TestApi16 < Minitest::Test
  include FilelockTestSupport

  def test_cancel_check_ends_wait_as_timeout
    holder = Filelock::FileLock.new(path)
    waiter = Filelock::FileLock.new(path)
    calls = 0
    holder.acquire
    err = assert_raises(Filelock::Timeout) do
      waiter.acquire(timeout: 30, cancel_check: -> { (calls += 1) >= 3 })
    end
    assert_equal path, err.lock_file
    assert_equal 3, calls
    refute waiter.locked?
    holder.release
    # Not called when the lock is free.
    waiter.acquire(cancel_check: -> { raise "called" }) { assert waiter.locked? }
  end

  def test_cancel_check_error_propagates
    holder = Filelock::SoftFileLock.new(path)
    waiter = Filelock::SoftFileLock.new(path)
    holder.acquire
    err = assert_raises(ArgumentError) do
      waiter.acquire(timeout: 30, cancel_check: -> { raise ArgumentError, "boom from check" })
    end
    assert_equal "boom from check", err.message
    assert_equal 0, waiter.lock_counter
    assert_raises(TypeError) { waiter.acquire(timeout: 0, cancel_check: 42) }
  ensure
    holder&.release
  end

  def test_on_acquired_gets_the_locked_descriptor
    fds = []
    lock = Filelock::FileLock.new(path, on_acquired: ->(fd) { fds << fd })
    other = Filelock::FileLock.new(path)
    lock.synchronize do
      lock.synchronize { nil } # re-entry: not called again
      assert_raises(Filelock::Timeout) { other.acquire(timeout: 0) }
    end
    assert_equal 1, fds.size
    assert_kind_of Integer, fds.first
  end

  def test_failing_on_acquired_releases_and_reraises
    lock = Filelock::FileLock.new(path, on_acquired: ->(fd) { raise IOError, "refused fd #{fd}" })
    assert_raises(IOError) { lock.acquire }
    refute lock.locked?
    assert_raises(IOError) { lock.synchronize { flunk "the block must not run" } }
    Filelock::FileLock.new(path).acquire(timeout: 0).release # released: free at once
    err = assert_raises(ArgumentError) { Filelock::SoftFileLock.new(path, on_acquired: ->(_) {}) }
    assert_match(/on_acquired is not supported by SoftFileLock/, err.message)
  end

  # on_acquired travels on the shared Options object: a singleton is the same
  # object for the same callable and refuses another one.
  def test_singleton_compares_on_acquired_by_identity
    fds = []
    hook = ->(fd) { fds << fd }
    lock = Filelock::FileLock.new(path, singleton: true, on_acquired: hook)
    assert_same lock, Filelock::FileLock.new(path, singleton: true, on_acquired: hook)
    err = assert_raises(ArgumentError) { Filelock::FileLock.new(path, singleton: true, on_acquired: ->(_) {}) }
    assert_match(/differing arguments/, err.message)
    assert_raises(ArgumentError) { Filelock::FileLock.new(path, singleton: true) }
    lock.synchronize { nil }
    assert_equal 1, fds.size
    assert_same hook, lock.on_acquired
  end

  def test_lock_descriptor_contends_with_filelock
    lock = Filelock::FileLock.new(path)
    File.open(path, File::RDWR | File::CREAT) do |io|
      lock.acquire
      refute Filelock.lock_descriptor(io, blocking: false)
      lock.release
      assert Filelock.lock_descriptor(io.fileno)
      assert_raises(Filelock::Timeout) { lock.acquire(timeout: 0) }
      Filelock.unlock_descriptor(io)
      lock.acquire(timeout: 0).release
      err = assert_raises(ArgumentError) { Filelock.lock_descriptor(io, poll_interval: 0) }
      assert_match(/poll_interval must be finite and greater than 0/, err.message)
    end
  end

  def test_lock_descriptor_wait_is_interruptible
    lock = Filelock::FileLock.new(path)
    lock.acquire
    File.open(path, File::RDWR) do |io|
      assert_raises(Timeout::Error) do
        Timeout.timeout(0.3) { Filelock.lock_descriptor(io) }
      end
      woke = Thread.new { Filelock.lock_descriptor(io) }
      lock.release
      assert_equal true, woke.join(30)&.value
      Filelock.unlock_descriptor(io)
    end
  ensure
    lock.release(force: true)
  end
end
