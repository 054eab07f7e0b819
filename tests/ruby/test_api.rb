# frozen_string_literal: true

require "test_helper"
require "pathname"

class TestApi < Minitest::Test
  include FilelockTestSupport

  def test_defaults_and_readers
    lock = Filelock::FileLock.new(path)
    assert_equal path, lock.lock_file
    assert lock.lock_file.frozen?
    assert_equal(-1.0, lock.timeout)
    assert lock.blocking?
    assert_nil lock.mode
    assert lock.thread_local?
    refute lock.singleton?
    refute lock.locked?
    assert_equal 0, lock.lock_counter
    assert_in_delta 0.05, lock.poll_interval, 1e-9
    assert_equal :kernel, lock.kind
    refute File.exist?(path), "nothing is created before the first acquire"
  end

  def test_constructor_keywords
    lock = Filelock::FileLock.new(path, timeout: 2, mode: 0o600, thread_local: false,
                                        blocking: false, poll_interval: 0.2)
    assert_equal 2.0, lock.timeout
    assert_equal 0o600, lock.mode
    refute lock.thread_local?
    refute lock.blocking?
    assert_in_delta 0.2, lock.poll_interval, 1e-9
  end

  def test_setters
    lock = Filelock::FileLock.new(path)
    lock.timeout = 3.5
    assert_equal 3.5, lock.timeout
    lock.blocking = false
    refute lock.blocking?
    lock.blocking = true
    assert lock.blocking?
    lock.poll_interval = 0.1
    assert_in_delta 0.1, lock.poll_interval, 1e-9
  end

  def test_synchronize_acquires_yields_and_releases
    lock = Filelock::FileLock.new(path)
    seen = nil
    result = lock.synchronize do |l|
      seen = [l.equal?(lock), lock.locked?, lock.lock_counter]
      :value
    end
    assert_equal [true, true, 1], seen
    assert_equal :value, result
    refute lock.locked?
    assert File.exist?(path), "the kernel lock file stays after release"
  end

  def test_synchronize_releases_on_exception
    lock = Filelock::FileLock.new(path)
    assert_raises(RuntimeError) { lock.synchronize { raise "boom" } }
    refute lock.locked?
    assert_equal 0, lock.lock_counter
  end

  def test_acquire_with_block_is_synchronize
    lock = Filelock::FileLock.new(path)
    assert_equal 42, lock.acquire(timeout: 10) { lock.locked? ? 42 : 0 }
    refute lock.locked?
  end

  def test_acquire_without_block_returns_the_lock_held
    lock = Filelock::FileLock.new(path)
    assert_same lock, lock.acquire(blocking: false)
    assert lock.locked?
    assert_nil lock.release
    refute lock.locked?
  end

  def test_recursion_and_force_release
    lock = Filelock::FileLock.new(path)
    3.times { lock.acquire }
    assert_equal 3, lock.lock_counter
    lock.release
    assert_equal 2, lock.lock_counter
    assert lock.locked?
    lock.release(force: true)
    assert_equal 0, lock.lock_counter
    refute lock.locked?
    lock.release # not held: a no-op
    assert_equal 0, lock.lock_counter
  end

  def test_open_holds_for_the_block
    inside = nil
    value = Filelock::FileLock.open(path, timeout: 10) do |l|
      inside = [l.class, l.locked?, l.timeout]
      :done
    end
    assert_equal [Filelock::FileLock, true, 10.0], inside
    assert_equal :done, value
    # Released: another handle wins at once.
    other = Filelock::FileLock.new(path)
    other.acquire(timeout: 0)
    other.release
  end

  def test_open_without_block_returns_held_lock
    lock = Filelock::FileLock.open(path)
    assert lock.locked?
    lock.release
  end

  def test_pathname_and_mode
    lock = Filelock::FileLock.new(Pathname.new(path("m.lock")), mode: 0o640)
    assert_equal path("m.lock"), lock.lock_file
    lock.synchronize {}
    assert_equal 0o640, File.stat(path("m.lock")).mode & 0o777
  end

  def test_missing_parent_directories_are_created
    deep = File.join(@tmp, "a", "b", "c.lock")
    Filelock::FileLock.new(deep).synchronize {}
    assert File.file?(deep)
  end

  def test_timeout_error
    holder = Filelock::FileLock.new(path)
    t, release = hold_in_thread(holder)
    lock = Filelock::FileLock.new(path)
    e = assert_raises(Filelock::Timeout) { lock.acquire(timeout: 0) }
    assert_kind_of ::Timeout::Error, e
    assert_equal path, e.lock_file
    assert_equal "The file lock '#{path}' could not be acquired.", e.message
    assert_raises(Filelock::Timeout) { lock.acquire(timeout: 0.2) }
    assert_raises(Filelock::Timeout) { lock.acquire(blocking: false) }
    assert_raises(Filelock::Timeout) { lock.synchronize(timeout: 0.1) { flunk "must not run" } }
    refute lock.locked?
    assert_equal 0, lock.lock_counter
    release << true
    join!(t)
    lock.acquire(timeout: 10)
    assert lock.locked?
    lock.release
  end

  def test_default_timeout_and_blocking_from_constructor
    holder = Filelock::FileLock.new(path)
    t, release = hold_in_thread(holder)
    assert_raises(Filelock::Timeout) { Filelock::FileLock.new(path, timeout: 0.1).acquire }
    assert_raises(Filelock::Timeout) { Filelock::FileLock.new(path, blocking: false).acquire }
    lock = Filelock::FileLock.new(path, timeout: 0.1)
    lock.timeout = 0
    assert_raises(Filelock::Timeout) { lock.acquire }
    release << true
    join!(t)
  end

  def test_timeout_class_is_usable_alone
    e = Filelock::Timeout.new("x.lock")
    assert_equal "The file lock 'x.lock' could not be acquired.", e.message
    assert_equal "x.lock", e.lock_file
    assert Filelock::Timeout < ::Timeout::Error
    assert Filelock::DeadlockError < ::ThreadError
  end

  def test_two_handles_exclude_each_other
    a = Filelock::FileLock.new(path)
    b = Filelock::FileLock.new(path)
    t, release = hold_in_thread(a)
    assert_raises(Filelock::Timeout) { b.acquire(timeout: 0) }
    release << true
    join!(t)
    b.synchronize { assert b.locked? }
  end

  def test_singleton_returns_the_same_object
    a = Filelock::FileLock.new(path, singleton: true)
    b = Filelock::FileLock.new(path, singleton: true)
    assert_same a, b
    assert a.singleton?
    c = Filelock::FileLock.new(path)
    refute_same a, c
    a.acquire
    assert_equal 1, b.lock_counter
    b.release
    refute a.locked?
  end

  def test_singleton_with_other_settings_is_an_argument_error
    a = Filelock::FileLock.new(path, singleton: true, timeout: 1)
    assert_raises(ArgumentError) { Filelock::FileLock.new(path, singleton: true, timeout: 2) }
    assert_raises(ArgumentError) { Filelock::SoftFileLock.new(path, singleton: true, timeout: 1) }
    assert_same a, Filelock::FileLock.new(path, singleton: true, timeout: 1)
    e = assert_raises(ArgumentError) { Filelock::FileLock.new(path, singleton: true, timeout: 3) }
    # The pure-Python package's words, from the core.
    assert e.message.start_with?("Singleton lock instances cannot be initialized with differing arguments"), e.message
  end

  def test_singleton_registry_is_per_class
    sub = Class.new(Filelock::FileLock)
    a = Filelock::FileLock.new(path, singleton: true)
    b = sub.new(path, singleton: true)
    refute_same a, b
    assert_instance_of sub, b
    assert_same b, sub.new(File.join(File.dirname(path), ".", File.basename(path)), singleton: true)
    # One core handle for the lock file: one hold, seen from both.
    a.acquire
    assert_equal 1, b.lock_counter
    a.release
  end

  def test_options_left_out_or_nil_take_the_cores_defaults
    lock = Filelock::FileLock.new(path, timeout: nil, poll_interval: nil, mode: nil)
    assert_operator lock.timeout, :<, 0
    assert_equal ::Filelock_ext::Options.new.poll_interval, lock.poll_interval
    assert lock.blocking?
    assert lock.thread_local?
    refute lock.singleton?
    assert_nil lock.mode
    e = assert_raises(ArgumentError) { Filelock::FileLock.new(path, timout: 1) }
    assert_match(/unknown keyword: :timout/, e.message)
    assert_raises(ArgumentError) { Filelock::ReadWriteLock.new(path, thread_local: false) }
  end

  def test_soft_lock
    lock = Filelock::SoftFileLock.new(path)
    assert_equal :soft, lock.kind
    lock.synchronize do
      assert File.exist?(path), "the marker exists while held"
      other = Filelock::SoftFileLock.new(path)
      assert_raises(Filelock::Timeout) { other.acquire(timeout: 0) }
      assert_raises(Filelock::Timeout) { other.acquire(timeout: 0.1) }
    end
    refute File.exist?(path), "the marker is deleted on release"
  end

  def test_shared_handle_state_is_seen_by_all_threads
    lock = Filelock::FileLock.new(path, thread_local: false)
    lock.acquire
    seen = join!(Thread.new { [lock.locked?, lock.lock_counter] })
    assert_equal [true, 1], seen
    # Another thread releases it: the state is the handle's.
    join!(Thread.new { lock.release })
    refute lock.locked?
  end

  def test_thread_local_state_is_per_thread
    lock = Filelock::FileLock.new(path)
    lock.acquire
    seen = join!(Thread.new { [lock.locked?, lock.lock_counter] })
    assert_equal [false, 0], seen
    # A release from a thread that does not hold it is a no-op.
    join!(Thread.new { lock.release })
    assert lock.locked?
    lock.release
  end

  def test_inspect
    lock = Filelock::FileLock.new(path)
    assert_match(/Filelock::FileLock .*test\.lock.* locked=false/, lock.inspect)
  end

  def test_version
    assert_match(/\A\d+\.\d+\.\d+\z/, Filelock::VERSION)
  end
end
