# frozen_string_literal: true

require "test_helper"

# Issue 10 from Ruby: Filelock::ReadWriteLock. Readers share, a writer is
# alone, within this process's threads and across processes (Ruby children,
# util-linux flock(1), our Python binding).
class TestReadWrite < Minitest::Test
  include FilelockTestSupport

  FLOCK = "/usr/bin/flock"

  def rw(file = path, **opts)
    Filelock::ReadWriteLock.new(file, **opts)
  end

  # A child Ruby holding a ReadWriteLock on `file` in `mode` (:read or
  # :write) until told to go.
  def child_holding(mode, file = path)
    c = ruby_child(<<~RUBY)
      require "filelock"
      lock = Filelock::ReadWriteLock.new(#{file.inspect})
      lock.acquire_#{mode}(timeout: #{DEADLINE})
      puts "held \#{lock.held_mode}"
      $stdin.gets
      lock.release
      puts "released"
    RUBY
    c.expect("held #{mode}")
    c
  end

  def release_child(c)
    c.say("go")
    c.expect("released")
    status, _out, err = c.finish
    assert status.success?, err
  end

  # Tries `mode` once in another thread of this process (thread-local
  # state: threads exclude each other like processes). :won or :timeout.
  def try_in_thread(lock, mode)
    join!(Thread.new do
      lock.public_send(mode, timeout: 0) { :won }
    rescue Filelock::Timeout
      :timeout
    end)
  end

  # --- API and state ---------------------------------------------------------

  def test_defaults_and_settings
    lock = rw(timeout: 3, blocking: false, poll_interval: 0.02, mode: 0o600)
    assert_equal path, lock.lock_file
    assert_equal 3.0, lock.timeout
    refute lock.blocking?
    assert_in_delta 0.02, lock.poll_interval
    assert_equal 0o600, lock.mode
    assert lock.thread_local?
    refute lock.singleton?
    assert_equal :kernel, lock.kind
    assert_nil lock.held_mode
    refute lock.locked?
    assert_equal 0, lock.lock_counter
  end

  def test_read_and_write_blocks
    lock = rw
    assert_equal :r, lock.read { |l| assert_same lock, l; assert_equal :read, lock.held_mode; :r }
    assert_nil lock.held_mode
    assert_equal :w, lock.write { assert_equal :write, lock.held_mode; :w }
    assert_nil lock.held_mode
    assert_equal 0, lock.lock_counter
    assert_raises(ArgumentError) { lock.read }
    assert_raises(ArgumentError) { lock.write }
  end

  def test_block_releases_on_exception
    lock = rw
    assert_raises(RuntimeError) { lock.write { raise "boom" } }
    refute lock.locked?
    assert_raises(RuntimeError) { lock.read { raise "boom" } }
    refute lock.locked?
  end

  def test_acquire_without_block_and_recursion_within_a_mode
    lock = rw
    assert_same lock, lock.acquire_read
    assert_same lock, lock.acquire_read(timeout: 0)
    lock.read(blocking: false) { assert_equal 3, lock.lock_counter }
    assert_equal 2, lock.lock_counter
    assert_equal :read, lock.held_mode
    lock.release
    assert_equal 1, lock.lock_counter
    lock.release
    assert_nil lock.held_mode
    lock.acquire_write
    lock.acquire_write
    assert_equal 2, lock.lock_counter
    lock.release(force: true)
    assert_equal 0, lock.lock_counter
    assert_nil lock.held_mode
    lock.release # not held: a no-op
  end

  def test_acquire_with_block
    lock = rw
    assert_equal 1, lock.acquire_read { lock.lock_counter }
    assert_equal :write, lock.acquire_write(timeout: 1) { lock.held_mode }
    refute lock.locked?
  end

  def test_upgrade_is_refused_and_the_read_lock_kept
    lock = rw
    lock.read do
      err = assert_raises(Filelock::LockModeError) { lock.acquire_write }
      assert_kind_of Filelock::Error, err
      assert_equal :ELOCKMODE, err.code
      assert_match(/held in shared mode/, err.message)
      assert_raises(Filelock::LockModeError) { lock.write(timeout: 0) {} }
      assert_equal :read, lock.held_mode
      assert_equal 1, lock.lock_counter
      # Still a reader for everybody else: other readers yes, writers no.
      assert_equal :won, try_in_thread(rw, :read)
      assert_equal :timeout, try_in_thread(rw, :write)
    end
    assert_nil lock.held_mode
  end

  def test_downgrade_is_refused_and_the_write_lock_kept
    lock = rw
    lock.write do
      err = assert_raises(Filelock::LockModeError) { lock.acquire_read(blocking: false) }
      assert_match(/held in exclusive mode/, err.message)
      assert_raises(Filelock::LockModeError) { lock.read {} }
      assert_equal :write, lock.held_mode
      assert_equal 1, lock.lock_counter
      assert_equal :timeout, try_in_thread(rw, :read)
    end
    assert_equal :won, try_in_thread(rw, :read)
  end

  def test_singleton
    a = rw(singleton: true)
    assert_same a, rw(singleton: true)
    assert_raises(ArgumentError) { rw(singleton: true, timeout: 5) }
    refute_same a, rw
  end

  def test_a_nul_byte_in_the_path_is_an_argument_error
    assert_raises(ArgumentError) { rw("#{path}\0x") }
  end

  # --- within one process: threads -------------------------------------------

  def test_readers_in_threads_share_and_exclude_a_writer
    lock = rw
    lock.read do
      assert_equal :won, try_in_thread(lock, :read)
      assert_equal :won, try_in_thread(rw, :read)
      assert_equal :timeout, try_in_thread(lock, :write)
    end
    assert_equal :won, try_in_thread(lock, :write)
  end

  # The read wait goes through the same GVL-free, interruptible wait as the
  # exclusive one: other threads run meanwhile, Thread#raise ends it, and
  # nothing stays held.
  def test_waiting_reader_releases_the_gvl_and_is_interruptible
    lock = rw
    writer_held = Queue.new
    go = Queue.new
    writer = Thread.new do
      lock.write do
        writer_held << true
        go.pop
      end
    end
    pop!(writer_held)
    reader = Thread.new { lock.acquire_read(timeout: -1) }
    reader.report_on_exception = false
    limit = Process.clock_gettime(Process::CLOCK_MONOTONIC) + DEADLINE
    sleep 0.01 until reader.status == "sleep" ||
                     Process.clock_gettime(Process::CLOCK_MONOTONIC) > limit
    assert_equal "sleep", reader.status
    # Other threads run while the reader waits (a held GVL would stop them).
    ticks = Queue.new
    ticker = Thread.new { 5.times { ticks << 1; sleep 0.01 } }
    5.times { pop!(ticks) }
    join!(ticker)
    assert reader.alive?, "the reader still waits"
    reader.raise(Interrupt, "stop waiting")
    assert_raises(Interrupt) { join!(reader) }
    go << true
    join!(writer)
    # The interrupted wait left nothing behind.
    assert_equal :won, try_in_thread(lock, :write)
  end

  # --- across processes ----------------------------------------------------

  def test_several_reader_processes_hold_at_once
    children = Array.new(3) { child_holding(:read) }
    lock = rw
    lock.read(timeout: 0) { assert_equal :read, lock.held_mode }
    assert_raises(Filelock::Timeout) { lock.acquire_write(timeout: 0.2) }
    assert_raises(Filelock::Timeout) { lock.acquire_write(blocking: false) }
    refute lock.locked?
    children.each { |c| release_child(c) }
    lock.write(timeout: DEADLINE) {}
  end

  def test_writer_process_excludes_readers_and_writers
    c = child_holding(:write)
    lock = rw
    assert_raises(Filelock::Timeout) { lock.acquire_read(timeout: 0.2) }
    assert_raises(Filelock::Timeout) { lock.read(blocking: false) {} }
    assert_raises(Filelock::Timeout) { lock.acquire_write(timeout: 0) }
    assert_raises(Filelock::Timeout) { lock.write(timeout: 0.2) {} }
    refute lock.locked?
    # Waiting in both modes ends when the writer leaves.
    reader = Thread.new { lock.read(timeout: DEADLINE) { :read } }
    release_child(c)
    assert_equal :read, join!(reader)
  end

  def test_timeout_error_names_the_lock_file
    c = child_holding(:write)
    lock = rw(timeout: 0.1)
    err = assert_raises(Filelock::Timeout) { lock.acquire_read }
    assert_equal path, err.lock_file
    assert_equal "The file lock '#{path}' could not be acquired.", err.message
    lock.blocking = false
    assert_raises(Filelock::Timeout) { lock.acquire_write(timeout: -1) }
    release_child(c)
  end

  # Readers re-acquire without pause, overlapping each other, so the file
  # is never free of readers; a writer must still get in (the gate). The
  # bound is loose: it only tells "got in" from "starved".
  def test_writer_is_not_starved_by_continuous_readers
    readers = Array.new(3) do
      ruby_child(<<~RUBY)
        require "filelock"
        lock = Filelock::ReadWriteLock.new(#{path.inspect})
        stop = false
        Thread.new { $stdin.gets; stop = true }
        n = 0
        until stop
          lock.read(timeout: #{DEADLINE}) { puts "reading" if (n += 1) == 1; sleep 0.02 }
        end
        puts "done \#{n}"
      RUBY
    end
    readers.each { |c| c.expect("reading") }
    lock = rw
    lock.write(timeout: 10) { assert_equal :write, lock.held_mode }
    readers.each do |c|
      c.say("stop")
      status, out, err = c.finish
      assert status.success?, err
      assert_match(/\Adone \d+/, out)
    end
  end

  # --- interop: util-linux flock(1) ----------------------------------------

  def flock_try(flag)
    _out, status = run_cmd(FLOCK, flag, "-n", path, "true")
    status.exitstatus.zero? ? :won : :busy
  end

  def test_flock_cli_against_our_reader_and_writer
    skip "#{FLOCK} missing (util-linux)" unless File.executable?(FLOCK)
    lock = rw
    lock.read do
      assert_equal :won, flock_try("-s")
      assert_equal :busy, flock_try("-x")
    end
    lock.write do
      assert_equal :busy, flock_try("-s")
      assert_equal :busy, flock_try("-x")
    end
    assert_equal :won, flock_try("-x")
  end

  def flock_holding(flag)
    stdin, stdout, wait = Open3.popen2(FLOCK, flag, path, "-c", "echo held; read x")
    assert_equal "held", Timeout.timeout(DEADLINE) { stdout.gets }&.chomp
    [stdin, stdout, wait]
  end

  def release_flock(handles)
    stdin, stdout, wait = handles
    stdin.puts
    stdin.close
    flunk "flock did not exit" unless wait.join(DEADLINE)
    stdout.close
  end

  def test_our_locks_against_flock_cli_holders
    skip "#{FLOCK} missing (util-linux)" unless File.executable?(FLOCK)
    lock = rw
    h = flock_holding("-s")
    assert_equal :read, lock.read(timeout: 0) { lock.held_mode }
    assert_raises(Filelock::Timeout) { lock.acquire_write(timeout: 0.2) }
    release_flock(h)
    h = flock_holding("-x")
    assert_raises(Filelock::Timeout) { lock.acquire_read(timeout: 0.2) }
    assert_raises(Filelock::Timeout) { lock.acquire_write(blocking: false) }
    release_flock(h)
    lock.write(timeout: DEADLINE) {}
  end

  # --- interop: our Python binding -----------------------------------------

  # <build>/bindings/python/pkg, from FL_BUILD_DIR (set by CTest).
  def python_pkg
    dir = ENV["FL_BUILD_DIR"] && File.join(ENV["FL_BUILD_DIR"], "bindings", "python", "pkg")
    unless dir && File.directory?(dir)
      skip "our Python binding is not built (no #{dir || '$FL_BUILD_DIR/bindings/python/pkg'})"
    end
    skip "#{PYTHON} missing" unless File.executable?(PYTHON)
    dir
  end

  # A Python process holding our Python ReadWriteLock in `mode` until its
  # stdin gets a line.
  def python_holding(mode)
    code = <<~PY
      import sys
      from filelock import ReadWriteLock
      lock = ReadWriteLock(sys.argv[1], is_singleton=False)
      with lock.#{mode}_lock(timeout=#{DEADLINE}):
          print("held", flush=True)
          sys.stdin.readline()
      print("released", flush=True)
    PY
    env = { "PYTHONPATH" => python_pkg }
    stdin, stdout, stderr, wait = Open3.popen3(env, PYTHON, "-c", code, path)
    line = Timeout.timeout(DEADLINE) { stdout.gets }
    assert_equal "held", line&.chomp, -> { Timeout.timeout(5) { stderr.read } }
    [stdin, stdout, stderr, wait]
  end

  def release_python(handles)
    stdin, stdout, stderr, wait = handles
    stdin.puts
    stdin.close
    flunk "python did not exit" unless wait.join(DEADLINE)
    assert wait.value.success?, stderr.read
    [stdout, stderr].each(&:close)
  end

  # Python tries once; prints "won" or "timeout".
  def python_try(mode)
    code = <<~PY
      import sys
      from filelock import ReadWriteLock, Timeout
      lock = ReadWriteLock(sys.argv[1], is_singleton=False)
      try:
          with lock.#{mode}_lock(timeout=0):
              print("won")
      except Timeout:
          print("timeout")
    PY
    out, status = run_cmd({ "PYTHONPATH" => python_pkg }, PYTHON, "-c", code, path)
    assert status.success?, out
    out.strip
  end

  def test_ruby_and_python_readers_share_and_writers_exclude
    python_pkg
    h = python_holding("read")
    lock = rw
    assert_equal :read, lock.read(timeout: 0) { lock.held_mode }
    assert_raises(Filelock::Timeout) { lock.acquire_write(timeout: 0.2) }
    release_python(h)

    h = python_holding("write")
    assert_raises(Filelock::Timeout) { lock.acquire_read(timeout: 0.2) }
    release_python(h)

    lock.read do
      assert_equal "won", python_try("read")
      assert_equal "timeout", python_try("write")
    end
    lock.write do
      assert_equal "timeout", python_try("read")
      assert_equal "timeout", python_try("write")
    end
    assert_equal "won", python_try("write")
  end
end
