# frozen_string_literal: true

require "test_helper"

# Other processes: a Ruby child, Debian's pure-Python filelock, Ctrl-C,
# fork, and the demo writer.
class TestProcess < Minitest::Test
  include FilelockTestSupport

  def child_holding(lock_expr)
    child = ruby_child(<<~RUBY)
      require "filelock"
      lock = #{lock_expr}
      lock.acquire
      puts "held"
      STDIN.gets
      lock.release
      puts "released"
      STDIN.gets
    RUBY
    child.expect("held")
    child
  end

  def test_child_process_holds_parent_waits
    child = child_holding("Filelock::FileLock.new(#{path.dump})")
    lock = Filelock::FileLock.new(path)
    assert_raises(Filelock::Timeout) { lock.acquire(timeout: 0) }
    assert_raises(Filelock::Timeout) { lock.acquire(timeout: 0.2) }
    # A waiter blocked on the child's lock wins once the child releases.
    waiter = Thread.new { lock.synchronize(timeout: DEADLINE) { :won } }
    sleep 0.1
    child.say("go")
    child.expect("released")
    assert_equal :won, join!(waiter)
    child.say("exit")
    status, = child.finish
    assert status.success?
  end

  def test_parent_holds_child_times_out_then_wins
    lock = Filelock::FileLock.new(path)
    lock.acquire
    child = ruby_child(<<~RUBY)
      require "filelock"
      lock = Filelock::FileLock.new(#{path.dump})
      begin
        lock.acquire(timeout: 0.1)
        puts "acquired too early"
      rescue Filelock::Timeout => e
        puts "timeout \#{e.lock_file}"
      end
      STDIN.gets
      lock.synchronize(timeout: #{DEADLINE}) { puts "won" }
    RUBY
    child.expect("timeout #{path}")
    lock.release
    child.say("go")
    child.expect("won")
    status, = child.finish
    assert status.success?
  end

  def test_child_exit_releases_its_lock
    child = child_holding("Filelock::FileLock.new(#{path.dump})")
    lock = Filelock::FileLock.new(path)
    assert_raises(Filelock::Timeout) { lock.acquire(timeout: 0) }
    Process.kill(:KILL, child.pid)
    child.finish
    lock.synchronize(timeout: DEADLINE) { assert lock.locked? }
  end

  # --- Debian's pure-Python filelock (python3-filelock) -------------------

  def python_filelock?
    return @python_filelock if defined?(@python_filelock)

    out, status = run_cmd(PYTHON, "-c", "import filelock")
    @python_filelock = status.success? || (warn(out) && false)
  end

  # Python tries to take the lock once; prints "acquired" or "timeout".
  def python_try(cls, file)
    code = <<~PY
      import sys, filelock
      lock = filelock.#{cls}(sys.argv[1], timeout=0)
      try:
          lock.acquire()
          print("acquired")
          lock.release()
      except filelock.Timeout:
          print("timeout")
    PY
    out, status = run_cmd(PYTHON, "-c", code, file)
    assert status.success?, out
    out.strip
  end

  def python_holding(cls, file)
    code = <<~PY
      import sys, filelock
      lock = filelock.#{cls}(sys.argv[1])
      lock.acquire()
      print("held", flush=True)
      sys.stdin.readline()
      lock.release()
    PY
    stdin, stdout, stderr, wait = Open3.popen3(PYTHON, "-c", code, file)
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

  { "FileLock" => Filelock::FileLock, "SoftFileLock" => Filelock::SoftFileLock }.each do |py_cls, rb_cls|
    define_method("test_python_#{py_cls}_excluded_by_ruby") do
      skip "python3-filelock not installed" unless python_filelock?
      lock = rb_cls.new(path)
      lock.synchronize do
        assert_equal "timeout", python_try(py_cls, path)
      end
      assert_equal "acquired", python_try(py_cls, path)
    end

    define_method("test_ruby_#{rb_cls.name.split('::').last}_excluded_by_python") do
      skip "python3-filelock not installed" unless python_filelock?
      handles = python_holding(py_cls, path)
      lock = rb_cls.new(path)
      begin
        assert_raises(Filelock::Timeout) { lock.acquire(timeout: 0) }
        assert_raises(Filelock::Timeout) { lock.acquire(timeout: 0.2) }
        waiter = Thread.new { lock.synchronize(timeout: DEADLINE) { :won } }
        sleep 0.1
      ensure
        release_python(handles)
      end
      assert_equal :won, join!(waiter)
    end
  end

  # --- Ctrl-C ---------------------------------------------------------------

  def test_ctrl_c_ends_a_wait
    lock = Filelock::FileLock.new(path)
    lock.acquire
    child = ruby_child(<<~RUBY)
      require "filelock"
      lock = Filelock::FileLock.new(#{path.dump})
      begin
        # Inside the begin: a SIGINT that lands before the wait has begun
        # (the pause below is no handshake) ends it the same way.
        puts "waiting"
        lock.acquire
        puts "acquired"
      rescue Interrupt
        puts "interrupted locked=\#{lock.locked?} counter=\#{lock.lock_counter}"
      end
    RUBY
    child.expect("waiting")
    sleep 0.3 # into the wait
    Process.kill(:INT, child.pid)
    child.expect("interrupted locked=false counter=0")
    status, = child.finish
    assert status.success?
    lock.release
  end

  def test_ctrl_c_unhandled_ends_the_process
    lock = Filelock::FileLock.new(path)
    lock.acquire
    child = ruby_child(<<~RUBY)
      require "filelock"
      lock = Filelock::FileLock.new(#{path.dump})
      puts "waiting"
      lock.synchronize { puts "acquired" }
    RUBY
    child.expect("waiting")
    sleep 0.3
    Process.kill(:INT, child.pid)
    status, out, = child.finish
    refute status.success?
    assert_equal "", out
    lock.release
  end

  # --- fork ------------------------------------------------------------------

  def test_forked_child_leaves_the_parent_lock_alone
    lock = Filelock::FileLock.new(path)
    lock.acquire
    pid = fork do
      # The child drops its copy of the handle (GC at exit); the parent's
      # lock must survive both the release and the exit.
      lock.release(force: true)
      GC.start
      exit!(0) if lock.locked?
      exit(0)
    end
    _, status = Timeout.timeout(DEADLINE) { Process.wait2(pid) }
    assert status.success?
    assert lock.locked?
    other = Filelock::FileLock.new(path)
    t = Thread.new do
      other.acquire(timeout: 0)
      :acquired
    rescue Filelock::Timeout
      :still_held
    end
    assert_equal :still_held, join!(t)
    lock.release
  end

  # --- the demo writer ---------------------------------------------------------

  WRITER = File.join(SOURCE_DIR, "demo", "writer.rb")
  LINE = /\A(\S+) (\d+) \1\/\2\/its-over-anakin-i-have-the-high-ground\z/.freeze

  def check_lines(file, expected)
    seen = Hash.new { |h, k| h[k] = [] }
    File.readlines(file, chomp: true).each do |line|
      m = LINE.match(line)
      assert m, "torn line: #{line.inspect}"
      seen[m[1]] << m[2].to_i
    end
    expected.each { |tag, n| assert_equal((1..n).to_a, seen[tag], "lines of #{tag}") }
    assert_equal expected.keys.sort, seen.keys.sort
  end

  def run_writers(mode, count)
    file = path("high_ground.txt")
    lock_file = "#{file}.lock"
    cmds = %w[rb1 rb2 rb3].map { |tag| [RUBY, *ruby_args, WRITER, file, lock_file, count.to_s, tag, *mode] }
    threads = cmds.map { |c| Thread.new { run_cmd(*c, limit: 60) } }
    threads.each do |t|
      out, status = join!(t, 90)
      assert status.success?, out
    end
    file
  end

  def test_demo_writers_kernel
    check_lines(run_writers([], 20), "rb1" => 20, "rb2" => 20, "rb3" => 20)
  end

  def test_demo_writers_soft
    check_lines(run_writers(["--soft"], 20), "rb1" => 20, "rb2" => 20, "rb3" => 20)
  end

  def test_demo_writer_usage
    out, status = run_cmd(RUBY, *ruby_args, WRITER, "only-one-arg")
    assert_equal 2, status.exitstatus
    assert_match(/usage/, out)
  end
end
