# frozen_string_literal: true

require "test_helper"

# Filelock::SoftFileLease (lease_duration:, on_compromise: proc or block)
# and SoftFileLock lifetime: over the core's leases.
class TestLease < Minitest::Test
  include FilelockTestSupport

  def wait_until(limit = DEADLINE)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + limit
    sleep 0.01 until yield || Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
    yield
  end

  def test_settings
    lease = Filelock::SoftFileLease.new(path)
    assert_equal 30.0, lease.lease_duration
    assert_equal 10.0, lease.heartbeat_interval
    assert_equal :soft, lease.kind
    assert_raises(ArgumentError) { Filelock::SoftFileLease.new(path, lease_duration: 2, heartbeat_interval: 2) }
    assert_raises(ArgumentError) { Filelock::SoftFileLock.new(path, lifetime: -1) }
  end

  # The defaults and the checks are the core's: the signature reads its
  # constant, and its messages (the pure-Python package's words, the lock
  # file after them) reach the caller unchanged.
  def test_settings_are_the_cores
    params = Filelock::SoftFileLease.instance_method(:initialize).parameters
    assert_includes params, %i[key lease_duration]
    ext = Filelock.const_get(:Ext)
    assert_equal ext::FL_LEASE_DEFAULT_DURATION, Filelock::SoftFileLease::DEFAULT_DURATION
    assert_equal ext::FL_LEASE_DEFAULT_DURATION, Filelock::SoftFileLease.new(path).lease_duration
    lease = Filelock::SoftFileLease.new(path, lease_duration: 7.5)
    assert_equal 7.5 / ext::FL_LEASE_HEARTBEAT_DIVISOR, lease.heartbeat_interval
    err = assert_raises(ArgumentError) { Filelock::SoftFileLease.new(path, lease_duration: 0) }
    assert_equal "lease_duration must be positive, got 0 (lock file '#{path}')", err.message
    err = assert_raises(ArgumentError) { Filelock::SoftFileLease.new(path, lease_duration: 3, heartbeat_interval: 0) }
    assert_equal "heartbeat_interval must be positive and below lease_duration, got 0 (lock file '#{path}')",
                 err.message
    err = assert_raises(ArgumentError) { Filelock::SoftFileLease.new(path, lease_duration: Float::NAN) }
    assert_match(/\Alease_duration must be positive, got nan /, err.message)
    err = assert_raises(ArgumentError) { Filelock::FileLock.new(path, lifetime: -1.5) }
    assert_equal "lifetime must be finite and non-negative, not -1.5", err.message
    assert_raises(TypeError) { Filelock::SoftFileLease.new(path, lease_duration: "30") }
  end

  def test_marker_is_a_lease_record
    lease = Filelock::SoftFileLease.new(path, lease_duration: 5)
    lease.synchronize do
      text = File.read(path)
      assert text.start_with?("filelock/2\npid=#{Process.pid}\n"), text
      assert_includes text, "\nmode=lease\n"
      assert_equal Process.pid, lease.owner.pid
    end
    refute File.exist?(path)
  end

  def test_lost_lease_calls_the_block_and_release_raises
    seen = Queue.new
    lease = Filelock::SoftFileLease.new(path, lease_duration: 0.6, heartbeat_interval: 0.1) { |c| seen << c }
    lease.acquire
    File.unlink(path)
    c = pop!(seen)
    assert_equal :marker_missing, c.reason
    assert_equal path, c.lock_file
    assert_same c, lease.compromise
    err = assert_raises(Filelock::Error) { lease.release }
    assert_equal :ELOST, err.code
    assert_match(/marker-missing/, err.message)
    refute lease.locked?
    # A fresh acquire is a fresh claim.
    lease.synchronize { assert_nil lease.compromise }
  end

  # One rule across languages (docs/soft-lock-protocol.md): the block's own
  # error is never replaced by the lost lease's at the end of synchronize;
  # the loss is in #compromise, and the lock is released.
  # A lease setting that is no number, or a number with no real value: a
  # TypeError naming the setting and the lock file (a Complex once gave
  # Ruby's bare "can't convert 1+1i into Float", a String "seconds must be
  # Numeric", neither naming either).
  def test_bad_lease_types_name_the_setting_and_the_lock_file
    [[:lease_duration, "10"], [:lease_duration, Complex(1, 1)], [:heartbeat_interval, true],
     [:heartbeat_interval, 1i], [:timeout, :forever]].each do |key, value|
      err = assert_raises(TypeError) { Filelock::SoftFileLease.new(path, key => value) }
      assert_includes err.message, key.to_s
      assert_includes err.message, "(lock file '#{path}')"
    end
    lease = Filelock::SoftFileLease.new(path, lease_duration: Complex(5, 0))
    assert_equal 5.0, lease.lease_duration
    err = assert_raises(TypeError) { lease.timeout = Complex(0, 2) }
    assert_includes err.message, "timeout must be a real number, got (0+2i) (lock file '#{path}')"
  end

  def test_lost_lease_never_hides_the_blocks_error
    seen = Queue.new
    lease = Filelock::SoftFileLease.new(path, lease_duration: 0.6, heartbeat_interval: 0.1) { |c| seen << c }
    err = assert_raises(KeyError) do
      lease.synchronize do
        File.unlink(path)
        pop!(seen)
        raise KeyError, "the body's own"
      end
    end
    assert_equal "the body's own", err.message
    assert_equal :marker_missing, lease.compromise.reason
    refute lease.locked?
    # Without an error in flight the loss is raised.
    err = assert_raises(Filelock::Error) do
      lease.synchronize do
        File.unlink(path)
        pop!(seen)
      end
    end
    assert_equal :ELOST, err.code
    refute lease.locked?
    # Inside a rescue clause ($! set) the loss is still raised: that
    # exception is not the block's.
    begin
      raise IOError, "handled"
    rescue IOError
      err = assert_raises(Filelock::Error) do
        lease.synchronize do
          File.unlink(path)
          pop!(seen)
        end
      end
      assert_equal :ELOST, err.code
      # The block re-raising the handled exception (a bare `raise`, the
      # same object as $! outside): that is the block's error, and it goes
      # on. (Telling the block's error by identity with $! made the loss
      # replace it.)
      handled = $!
      err = assert_raises(IOError) do
        lease.synchronize do
          File.unlink(path)
          pop!(seen)
          raise
        end
      end
      assert_same handled, err
      refute lease.locked?
      # The block's error is also the handled one when raised explicitly.
      err = assert_raises(IOError) do
        lease.synchronize do
          File.unlink(path)
          pop!(seen)
          raise handled
        end
      end
      assert_same handled, err
      refute lease.locked?
    end
    # A block left by break carries no error: the loss is raised.
    err = assert_raises(Filelock::Error) do
      lease.synchronize do
        File.unlink(path)
        pop!(seen)
        break
      end
    end
    assert_equal :ELOST, err.code
    refute lease.locked?
  end

  def test_on_compromise_proc_and_replaced_marker
    seen = Queue.new
    lease = Filelock::SoftFileLease.new(path, lease_duration: 0.6, heartbeat_interval: 0.1,
                                              on_compromise: ->(c) { seen << c.reason })
    lease.acquire
    other = path("other")
    File.write(other, "1\nelsewhere\n")
    File.rename(other, path)
    assert_equal :owner_changed, pop!(seen)
    assert_raises(Filelock::Error) { lease.release }
    assert File.exist?(path) # not ours: left alone
  end

  def test_live_lease_is_never_taken_a_frozen_one_is
    code = <<~RUBY
      require "filelock"
      lost = Queue.new
      lease = Filelock::SoftFileLease.new(#{path.inspect}, lease_duration: 1.0) { |c| lost << c.reason }
      lease.acquire
      puts "held"; STDOUT.flush
      puts "lost \#{lost.pop}"; STDOUT.flush
      begin
        lease.release
      rescue Filelock::Error => e
        puts "release \#{e.code}"; STDOUT.flush
      end
    RUBY
    child = ruby_child(code)
    child.expect("held")
    waiter = Filelock::SoftFileLease.new(path, lease_duration: 1.0)
    assert_raises(Filelock::Timeout) { waiter.acquire(timeout: 3.5) }
    Process.kill(:STOP, child.pid)
    begin
      waiter.acquire(timeout: DEADLINE)
    ensure
      Process.kill(:CONT, child.pid)
    end
    child.expect("lost owner_changed")
    child.expect("release ELOST")
    assert child.finish[0].success?
    assert waiter.owned_by_us?
    waiter.release
  end

  # The registry drops a singleton's second object: the loss goes to the
  # object both calls returned.
  def test_singleton_lease_reports_to_the_object_kept
    seen = Queue.new
    opts = { lease_duration: 0.6, heartbeat_interval: 0.1, singleton: true }
    a = Filelock::SoftFileLease.new(path, **opts) { |c| seen << c }
    b = Filelock::SoftFileLease.new(path, **opts)
    assert_same a, b
    a.acquire
    File.unlink(path)
    assert_equal :marker_missing, pop!(seen).reason
    assert_raises(Filelock::Error) { a.release }
  end

  def test_lifetime_keyword
    assert_nil Filelock::SoftFileLock.new(path).lifetime
    assert_output(nil, /lifetime is ignored for Filelock::FileLock/) do
      assert_nil Filelock::FileLock.new(path, lifetime: 3).lifetime
    end
    assert_raises(ArgumentError) { Filelock::SoftFileLease.new(path, lifetime: 3) }
  end

  def test_lifetime_supersedes_a_live_holder
    a = Filelock::SoftFileLock.new(path, lifetime: 0.4)
    b = Filelock::SoftFileLock.new(path, lifetime: 0.4)
    assert_in_delta 0.4, a.lifetime
    a.acquire
    b.acquire(timeout: DEADLINE)
    assert_equal :ELOST, assert_raises(Filelock::Error) { a.release }.code
    assert b.owned_by_us?
    b.release
  end

  def test_duration_mismatch
    Filelock::SoftFileLease.new(path, lease_duration: 2).synchronize do
      err = assert_raises(Filelock::Error) { Filelock::SoftFileLease.new(path, lease_duration: 3).acquire(timeout: 1) }
      assert_equal :ELEASEMISMATCH, err.code
    end
  end
end
