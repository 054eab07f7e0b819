# frozen_string_literal: true

require "test_helper"

# Every failure comes from the core's error code through one mapping:
# ETIMEOUT -> Filelock::Timeout, EDEADLK -> Filelock::DeadlockError, an OS
# errno -> SystemCallError subclass, EINVAL -> ArgumentError, else
# Filelock::Error.
class TestErrors < Minitest::Test
  include FilelockTestSupport

  def test_directory_is_eisdir
    e = assert_raises(Errno::EISDIR) { Filelock::FileLock.new(@tmp).acquire }
    assert_includes e.message, @tmp
    assert_kind_of SystemCallError, e
  end

  def test_file_as_parent_is_enotdir
    file = path("plain")
    File.write(file, "")
    e = assert_raises(Errno::ENOTDIR) { Filelock::FileLock.new(File.join(file, "x.lock")).acquire }
    assert_includes e.message, file
  end

  def test_symlink_is_eloop_and_target_untouched
    target = path("target")
    File.write(target, "keep")
    File.symlink(target, path("link.lock"))
    e = assert_raises(Errno::ELOOP) { Filelock::FileLock.new(path("link.lock")).acquire }
    assert_includes e.message, path("link.lock")
    assert_equal "keep", File.read(target)
  end

  def test_fifo_is_filelock_error
    File.mkfifo(path("fifo"))
    e = assert_raises(Filelock::Error) { Filelock::FileLock.new(path("fifo")).acquire(timeout: 0) }
    assert_equal :ENOTREG, e.code
    assert_includes e.message, path("fifo")
  end

  def test_permission_denied_is_eacces
    dir = path("closed")
    Dir.mkdir(dir, 0o500)
    lock_file = File.join(dir, "x.lock")
    if Process.uid.zero?
      # Root passes permission checks: try as nobody in a child process.
      rd, wr = IO.pipe
      pid = fork do
        rd.close
        Process::Sys.setgid(65_534)
        Process::Sys.setuid(65_534)
        File.chmod(0o777, @tmp) rescue nil # rubocop:disable Style/RescueModifier
        begin
          Filelock::FileLock.new(lock_file).acquire(timeout: 0)
          wr.puts "acquired"
        rescue SystemCallError => e
          wr.puts "#{e.class} #{e.message}"
        end
        wr.close
        exit!(0)
      end
      wr.close
      File.chmod(0o711, @tmp)
      report = Timeout.timeout(DEADLINE) { rd.read }
      Process.wait(pid)
      assert_match(/\AErrno::EACCES .*#{Regexp.escape(lock_file)}/, report)
    else
      e = assert_raises(Errno::EACCES) { Filelock::FileLock.new(lock_file).acquire(timeout: 0) }
      assert_includes e.message, lock_file
    end
  end

  def test_os_reason_is_said_once
    e = assert_raises(Errno::EISDIR) { Filelock::FileLock.new(@tmp).acquire }
    assert_equal 1, e.message.scan("Is a directory").size, e.message
  end

  def test_nul_byte_is_argument_error
    e = assert_raises(ArgumentError) { Filelock::FileLock.new("a\0b.lock") }
    assert_match(/NUL/, e.message)
  end

  def test_bad_arguments
    assert_raises(ArgumentError) { Filelock::FileLock.new(path, mode: 0o10000) }
    assert_raises(ArgumentError) { Filelock::FileLock.new(path, poll_interval: -1) }
    assert_raises(ArgumentError) { Filelock::FileLock.new(path, timeout: Float::NAN) }
    lock = Filelock::FileLock.new(path)
    assert_raises(ArgumentError) { lock.timeout = Float::NAN }
    assert_raises(ArgumentError) { lock.poll_interval = -0.5 }
    assert_raises(ArgumentError) { lock.acquire(poll_interval: -1) }
    assert_raises(ArgumentError) { lock.acquire(timeout: Float::NAN) }
    refute lock.locked?
    assert_raises(TypeError) { Filelock::FileLock.new(path, timeout: "1") }
    assert_raises(TypeError) { Filelock::FileLock.new(42) }
    assert_raises(TypeError) { lock.acquire(timeout: "1") }
  end

  def test_self_deadlock_is_deadlock_error
    a = Filelock::FileLock.new(path)
    b = Filelock::FileLock.new(path)
    a.acquire
    e = assert_raises(Filelock::DeadlockError) { b.acquire }
    assert_kind_of ThreadError, e
    assert_includes e.message, path
    refute b.locked?
    # With a timeout it is an ordinary timeout, not a deadlock.
    assert_raises(Filelock::Timeout) { b.acquire(timeout: 0.05) }
    a.release
    b.synchronize { assert b.locked? }
  end

  def test_errors_leave_no_state
    lock = Filelock::FileLock.new(@tmp)
    3.times { assert_raises(Errno::EISDIR) { lock.acquire } }
    refute lock.locked?
    assert_equal 0, lock.lock_counter
  end
end
