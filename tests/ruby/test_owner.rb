# frozen_string_literal: true

require "test_helper"
require "socket"

# Issue 6 from Ruby: Lock#owner, #owned_by_us?, SoftFileLock#break_lock, and
# the core's proof-of-death recovery of soft markers seen through acquire.
class TestOwner < Minitest::Test
  include FilelockTestSupport

  HOST = Socket.gethostname

  # The start token the core records for `pid` (Linux):
  # (boot_id << 64) | starttime, boot_id read as one 128-bit hex number.
  def start_token(pid)
    boot = File.read("/proc/sys/kernel/random/boot_id").strip.delete("-").to_i(16)
    stat = File.read("/proc/#{pid}/stat")
    starttime = Integer(stat[(stat.rindex(")") + 1)..].split[22 - 3])
    ((boot << 64) | starttime).to_s
  end

  def plant(file, text, age: 0)
    File.write(file, text)
    t = Time.now - age
    File.utime(t, t, file)
  end

  # A pid that is certainly not running: a child that was reaped.
  def dead_pid
    pid = Process.spawn("true")
    Process.wait(pid)
    pid
  end

  # A live process to borrow a pid from; killed in the ensure.
  def with_live_process
    pid = Process.spawn("sleep", "60")
    yield pid
  ensure
    if pid
      Process.kill(:KILL, pid)
      Process.wait(pid)
    end
  end

  # A child Ruby holding `cls` on `file` until told to go.
  def child_holding(cls, file)
    c = ruby_child(<<~RUBY)
      require "filelock"
      lock = #{cls}.new(#{file.inspect})
      lock.acquire(timeout: #{DEADLINE})
      puts "held"
      $stdin.gets
      lock.release
      puts "released"
    RUBY
    c.expect("held")
    c
  end

  def release_child(c)
    c.say("go")
    c.expect("released")
    status, = c.finish
    assert status.success?
  end

  # --- owner ---------------------------------------------------------------

  def test_owner_of_a_free_lock_is_nil
    [Filelock::FileLock, Filelock::SoftFileLock].each do |cls|
      lock = cls.new(path("free-#{cls.name.split('::').last}.lock"))
      assert_nil lock.owner
      refute lock.owned_by_us?
      lock.synchronize {}
      assert_nil lock.owner, "after release (#{cls})"
    end
  end

  def test_owner_of_a_soft_lock_held_by_a_child
    c = child_holding("Filelock::SoftFileLock", path)
    lock = Filelock::SoftFileLock.new(path)
    owner = lock.owner
    assert_instance_of Filelock::Owner, owner
    assert_equal c.pid, owner.pid
    assert_equal HOST, owner.hostname
    assert_equal start_token(c.pid), owner.start_token
    refute owner.this_process?
    refute lock.owned_by_us?
    # The record is the pure-Python filelock's format, written in full.
    assert_equal "#{c.pid}\n#{HOST}\n#{start_token(c.pid)}\n", File.read(path)
    release_child(c)
    assert_nil lock.owner
  end

  def test_owner_of_our_own_soft_lock
    lock = Filelock::SoftFileLock.new(path)
    lock.synchronize do
      owner = lock.owner
      assert_equal Process.pid, owner.pid
      assert owner.this_process
      assert lock.owned_by_us?
      # Another object of this process sees the same holder.
      assert Filelock::SoftFileLock.new(path).owned_by_us?
    end
    refute lock.owned_by_us?
  end

  def test_kernel_owner_reports_the_holder_pid
    c = child_holding("Filelock::FileLock", path)
    lock = Filelock::FileLock.new(path)
    owner = lock.owner
    assert_equal c.pid, owner.pid
    assert_equal HOST, owner.hostname
    refute owner.this_process
    refute lock.owned_by_us?
    release_child(c)
    assert_nil lock.owner
    lock.synchronize do
      assert_equal Process.pid, lock.owner.pid
      assert lock.owned_by_us?
    end
  end

  def test_owner_of_a_marker_without_record_is_nil
    # What Debian's python3-filelock (3.9) leaves: an empty marker.
    plant(path, "")
    lock = Filelock::SoftFileLock.new(path)
    assert_nil lock.owner
    refute lock.owned_by_us?
  end

  def test_owner_of_a_lock_path_that_is_a_directory_raises
    # An error, not "free": mapped as acquire maps it.
    Dir.mkdir(path)
    err = assert_raises(Errno::EISDIR) { Filelock::SoftFileLock.new(path).owner }
    assert_includes err.message, path
  end

  # --- recovery of stale markers (the core decides; acquire shows it) -------

  def test_marker_of_a_sigkilled_child_is_reclaimed
    c = child_holding("Filelock::SoftFileLock", path)
    Process.kill(:KILL, c.pid)
    status, = c.finish
    assert_equal 9, status.termsig
    assert File.exist?(path), "the killed child's marker stays behind"
    lock = Filelock::SoftFileLock.new(path)
    lock.synchronize(timeout: DEADLINE) do
      assert_equal Process.pid, lock.owner.pid
    end
    refute File.exist?(path)
  end

  def test_marker_of_a_dead_pid_on_this_host_is_reclaimed
    pid = dead_pid
    plant(path, "#{pid}\n#{HOST}\n12345\n")
    lock = Filelock::SoftFileLock.new(path)
    lock.synchronize(timeout: DEADLINE) { assert lock.owned_by_us? }
  end

  def test_marker_of_a_live_child_is_not_reclaimed_even_after_2_s
    c = child_holding("Filelock::SoftFileLock", path)
    lock = Filelock::SoftFileLock.new(path)
    # Past the 2 s grace that malformed markers get: age never breaks a
    # live holder's lock.
    assert_raises(Filelock::Timeout) { lock.acquire(timeout: 2.5) }
    assert_equal c.pid, lock.owner.pid
    release_child(c)
    lock.synchronize(timeout: DEADLINE) {}
  end

  def test_planted_marker_of_a_live_pid_with_its_token_is_not_reclaimed
    with_live_process do |pid|
      plant(path, "#{pid}\n#{HOST}\n#{start_token(pid)}\n", age: 3600)
      lock = Filelock::SoftFileLock.new(path)
      assert_raises(Filelock::Timeout) { lock.acquire(timeout: 0.3) }
      assert_equal pid, lock.owner.pid
    end
  end

  def test_marker_of_a_live_pid_with_another_start_token_is_reclaimed
    with_live_process do |pid|
      # The pid was recycled: same number, another process start.
      other = (start_token(pid).to_i + 1).to_s
      plant(path, "#{pid}\n#{HOST}\n#{other}\n")
      lock = Filelock::SoftFileLock.new(path)
      lock.synchronize(timeout: DEADLINE) { assert lock.owned_by_us? }
      assert Process.kill(0, pid), "the live process itself is untouched"
    end
  end

  def test_marker_of_another_host_is_not_reclaimed
    pid = dead_pid
    plant(path, "#{pid}\nnot-#{HOST}.example\n12345\n", age: 3600)
    lock = Filelock::SoftFileLock.new(path)
    assert_raises(Filelock::Timeout) { lock.acquire(timeout: 0.3) }
    owner = lock.owner
    assert_equal pid, owner.pid
    assert_equal "not-#{HOST}.example", owner.hostname
    refute owner.this_process
    assert File.exist?(path)
  end

  def test_malformed_marker_is_reclaimed_only_after_the_grace
    # Fresh (stamped 30 s ahead: younger than the 2 s grace for 32 s, not
    # just for the 2 s after the write that a stalled test could overrun).
    plant(path, "not a record", age: -30)
    lock = Filelock::SoftFileLock.new(path)
    assert_raises(Filelock::Timeout) { lock.acquire(timeout: 0) }
    plant(path, "not a record", age: 10)
    lock.synchronize(timeout: DEADLINE) {}
  end

  # --- break_lock ------------------------------------------------------------

  def test_break_lock_on_soft_removes_a_live_holders_marker
    c = child_holding("Filelock::SoftFileLock", path)
    lock = Filelock::SoftFileLock.new(path)
    assert_raises(Filelock::Timeout) { lock.acquire(timeout: 0) }
    assert_nil lock.break_lock
    refute File.exist?(path)
    # Mutual exclusion is void now: we get it while the child thinks it
    # holds it.
    lock.synchronize(timeout: 0) { assert lock.owned_by_us? }
    release_child(c)
  end

  def test_break_lock_of_a_free_soft_lock_is_a_no_op
    assert_nil Filelock::SoftFileLock.new(path).break_lock
  end

  def test_break_lock_on_kernel_raises
    lock = Filelock::FileLock.new(path)
    lock.synchronize do
      err = assert_raises(Filelock::Error) { lock.break_lock }
      assert_equal :ENOTSUP, err.code
      assert_match(/cannot break kernel lock/, err.message)
      assert lock.locked?, "the kernel lock is still held"
    end
  end
end
