# frozen_string_literal: true

# Shared by the minitest files of the Ruby binding. Run one file with
#   ruby -I <build>/bindings/ruby/lib -I tests/ruby tests/ruby/test_api.rb
# (CTest does this for every file, label "ruby").
#
# Every wait in these tests has a hard deadline so that a broken lock fails
# a test instead of hanging it; no test asserts how fast something is.

require "minitest/autorun"
require "filelock"
require "fileutils"
require "rbconfig"
require "tmpdir"
require "timeout"
require "open3"

module FilelockTestSupport
  RUBY = RbConfig.ruby
  PYTHON = "/usr/bin/python3"
  SOURCE_DIR = File.expand_path("../..", __dir__)
  # Generous: only there so that a broken lock fails instead of hanging.
  DEADLINE = 20

  # -I options that make a child Ruby load this very binding (build tree
  # or installed gem): the directories of filelock.rb and filelock_ext.
  def self.load_dirs
    @load_dirs ||= $LOADED_FEATURES
                   .select { |f| f.end_with?("/filelock.rb") || f =~ %r{/filelock_ext\.[^/]+\z} }
                   .map { |f| File.dirname(f) }.uniq
  end

  # A test that overstays this ends the process: a thread stuck inside a
  # broken wait cannot be killed, so failing loudly beats hanging.
  TEST_LIMIT = 90

  def setup
    super
    @tmp = Dir.mktmpdir("filelock-rb-")
    test_name = name
    @watchdog = Thread.new do
      sleep TEST_LIMIT
      warn "FATAL: #{test_name} did not finish within #{TEST_LIMIT} s"
      exit!(1)
    end
  end

  def teardown
    @watchdog&.kill
    Filelock.logger = nil
    FileUtils.rm_rf(@tmp) if @tmp
    super
  end

  def path(name = "test.lock")
    File.join(@tmp, name)
  end

  # Joins the thread, failing (and killing it) if it does not end in time.
  def join!(thread, limit = DEADLINE)
    return thread.value if thread.join(limit)

    # A thread stuck in a wait that ignores interrupts cannot be killed and
    # would hang the process at exit: end it now, loudly.
    warn "FATAL: #{name}: thread did not finish within #{limit} s"
    exit!(1)
  end

  # Pops from a queue with a deadline.
  def pop!(queue, limit = DEADLINE)
    Timeout.timeout(limit) { queue.pop }
  rescue ::Timeout::Error
    flunk "nothing arrived within #{limit} s"
  end

  # Runs `block` in a new thread holding `lock` until `release` gets an item.
  # Returns [thread, release_queue] once the lock is held.
  def hold_in_thread(lock)
    held = Queue.new
    release = Queue.new
    t = Thread.new do
      lock.acquire
      held << true
      release.pop
      lock.release
    end
    pop!(held)
    [t, release]
  end

  def ruby_args
    FilelockTestSupport.load_dirs.flat_map { |d| ["-I", d] }
  end

  # A child Ruby running `code` with this binding loadable. Its stdin and
  # stdout are pipes: the child reports with `puts` (STDOUT is synced) and
  # waits for lines on stdin.
  class Child
    attr_reader :pid, :stdin, :stdout

    def initialize(args, code)
      @stdin, @stdout, @stderr, @wait = Open3.popen3(*args, "-e", "STDOUT.sync = true\n" + code)
      @pid = @wait.pid
    end

    def expect(line, limit = DEADLINE)
      got = Timeout.timeout(limit) { @stdout.gets }
      raise "child said #{got.inspect}, expected #{line.inspect}; stderr: #{stderr_text}" unless got&.chomp == line

      got
    rescue ::Timeout::Error
      raise "child did not say #{line.inspect} within #{limit} s"
    end

    def say(line)
      @stdin.puts(line)
      @stdin.flush
    end

    # Waits for the exit; kills the child if it overstays.
    def finish(limit = DEADLINE)
      unless @wait.join(limit)
        Process.kill(:KILL, @pid)
        @wait.join
        raise "child did not exit within #{limit} s"
      end
      [@wait.value, @stdout.read, stderr_text]
    ensure
      [@stdin, @stdout].each { |io| io.close unless io.closed? }
    end

    def stderr_text
      @stderr_text ||= Timeout.timeout(5) { @stderr.read }
    rescue ::Timeout::Error
      "(stderr not closed)"
    end
  end

  def ruby_child(code)
    Child.new([RUBY, *ruby_args], code)
  end

  # Runs a command with a deadline; returns [stdout+stderr, status].
  def run_cmd(*cmd, limit: DEADLINE)
    out = +""
    status = nil
    Open3.popen2e(*cmd) do |stdin, io, wait|
      stdin.close
      reader = Thread.new { io.read }
      unless wait.join(limit)
        Process.kill(:KILL, wait.pid)
        wait.join
        flunk "#{cmd.first} did not finish within #{limit} s"
      end
      out = reader.value
      status = wait.value
    end
    [out, status]
  end
end
