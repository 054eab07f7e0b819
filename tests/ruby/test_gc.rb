# frozen_string_literal: true

require "test_helper"

# A lock object that becomes garbage while held is released by the
# collector, without raising and without calling into Ruby from the GC.
class TestGc < Minitest::Test
  include FilelockTestSupport

  def held_elsewhere?
    t = Thread.new do
      Filelock::FileLock.new(path).acquire(timeout: 0).release
      false
    rescue Filelock::Timeout
      true
    end
    join!(t)
  end

  # Creates and acquires a lock in a finished thread, so no stack of a
  # live thread still points at it.
  def drop_held_lock(cls = Filelock::FileLock)
    join!(Thread.new { cls.new(path).acquire; nil })
  end

  def test_garbage_collected_lock_is_released
    drop_held_lock
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + DEADLINE
    GC.start(full_mark: true, immediate_sweep: true) while held_elsewhere? &&
                                                         Process.clock_gettime(Process::CLOCK_MONOTONIC) < deadline
    refute held_elsewhere?, "the collected lock must have been released"
  end

  def test_garbage_collected_soft_lock_removes_its_marker
    drop_held_lock(Filelock::SoftFileLock)
    assert File.exist?(path)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + DEADLINE
    GC.start(full_mark: true, immediate_sweep: true) while File.exist?(path) &&
                                                         Process.clock_gettime(Process::CLOCK_MONOTONIC) < deadline
    refute File.exist?(path)
  end

  def test_gc_with_logger_on_does_not_call_ruby
    require "logger"
    require "stringio"
    io = StringIO.new
    Filelock.logger = Logger.new(io)
    drop_held_lock
    io.truncate(0)
    20.times { GC.start(full_mark: true, immediate_sweep: true) }
    refute held_elsewhere?
  end

  def test_exit_with_held_locks_is_quiet
    child = ruby_child(<<~RUBY)
      require "filelock"
      require "logger"
      Filelock.logger = Logger.new($stderr)
      keep = Array.new(5) { |i| Filelock::FileLock.new(#{path.dump} + i.to_s).acquire }
      soft = Filelock::SoftFileLock.new(#{path("soft").dump}).acquire
      shared = Filelock::FileLock.new(#{path("shared").dump}, thread_local: false).acquire
      single = Filelock::FileLock.new(#{path("single").dump}, singleton: true).acquire
      puts "held \#{keep.size} \#{soft.locked?} \#{shared.locked?} \#{single.locked?}"
    RUBY
    child.expect("held 5 true true true")
    status, _out, err = child.finish
    assert status.success?, err
    refute_match(/Error|\[BUG\]|warning/i, err)
    refute File.exist?(path("soft")), "the soft marker is removed at exit"
  end
end
