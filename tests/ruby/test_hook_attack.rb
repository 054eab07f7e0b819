# frozen_string_literal: true

# Hostile on_acquired hooks of waits under a Fiber scheduler (the minimal
# one of mini_scheduler.rb and the async gem's): the hook runs inside the
# core's wait hub -- fl_hub_acquire for a win at once (on the acquiring
# fiber), fl_hub_dispatch after a wait (on the hub's driver fiber) -- and
# stops or raises into fibers, kills the thread, throws, exits, forks,
# acquires and releases, runs the scheduler again, collects garbage. Each
# case runs in its own process (hook_attack_child.rb): it must not crash
# or hang (30 s each), and the lock must end up held by exactly whom the
# API says (checked with flock(1) from another process) or free.

require_relative "test_helper"

class TestHookAttack < Minitest::Test
  include FilelockTestSupport

  CHILD = File.join(__dir__, "hook_attack_child.rb")
  LIMIT = 30

  # scenario => what the waiting fiber gets (the RESULT line's first word),
  # per place where it differs: { "dispatch" => ..., "once" => ... }.
  EXPECTED = {
    # Fiber#raise of the waiting fiber: in the dispatch it ends the wait
    # (the win goes back); at once the fiber is the one running the hook
    # (resuming it): Ruby refuses, the hook raises, the lock is refused.
    "raise_own" => { "dispatch" => "RuntimeError", "once" => "FiberError" },
    "raise_own_drop" => { "dispatch" => "RuntimeError", "once" => "FiberError" },
    # async's Task#stop: in the dispatch the task stops in its wait; at
    # once async defers the stop (the task is resuming the hook), the
    # acquire returns won, and the stop comes at the task's next wait.
    "stop_own" => { "dispatch" => "Async::Stop", "once" => "won" },
    # The hook runs in a fiber of its own: no Async::Task.current there.
    "stop_current" => "RuntimeError",
    "raise_other" => "won",
    "stop_other" => "won",
    "kill_thread" => nil,
    "throw" => "UncaughtThrowError",
    "exit" => "SystemExit",
    "exit_bang" => nil,
    "fork" => "won",
    "same_t0" => "won",
    "same_forever" => "won",
    "obj_t0" => "won",
    "obj_forever" => "won",
    "dup" => "won",
    "spawn" => "won",
    "release_other_hold" => "won",
    "release_self" => "won",
    # MiniScheduler#run refuses to nest (as asyncio does); async's
    # reactor runs a step from inside the hook.
    "scheduler_run" => { "mini" => "RuntimeError", "async" => "won" },
    "sleep" => "won",
    "gc" => "won",
    "freeze" => "won"
  }.freeze
  ASYNC_ONLY = %w[stop_own stop_current stop_other].freeze

  def self.async_gem?
    require "async"
    true
  rescue LoadError
    false
  end

  def run_child(name, place, sched)
    skip "needs flock(1)" unless system("sh", "-c", "command -v flock >/dev/null")
    skip "the async gem is not installed (Debian: ruby-async)" if sched == "async" && !self.class.async_gem?
    lock = path("attack.lock")
    out, status = run_cmd(RUBY, *ruby_args, "-I", __dir__, CHILD, name, lock, place, sched, limit: LIMIT)
    assert system("flock", "-n", lock, "true"), "the lock file is still locked: #{out}"
    [out, status, out.lines.grep(/\ARESULT /).last&.split]
  end

  EXPECTED.each do |name, want|
    %w[dispatch once].each do |place|
      %w[mini async].each do |sched|
        next if sched == "mini" && ASYNC_ONLY.include?(name)

        define_method("test_#{name}_#{place}_#{sched}") do
          out, status, words = run_child(name, place, sched)
          refute_match(/\[BUG\]|Segmentation fault/, out)
          if name == "exit_bang"
            assert_equal 7, status.exitstatus, out
            next
          end
          assert_equal 0, status.exitstatus, out
          refute_nil words, out
          got = words[1]
          if name == "kill_thread"
            # The thread is killed once the core call returned (async turns
            # the kill of its driver task into a Stop of the others).
            assert_includes %w[thread-ended main-raised], got, out
            next
          end
          expected = want.is_a?(Hash) ? want[place] || want[sched] : want
          assert_equal expected, got, out
          # Whenever the fiber won, the API and another process agree.
          assert_includes words, "api=ok", out if got == "won" && name != "stop_own"
          case name
          when "same_t0", "obj_t0", "dup" then assert_includes words, "sync=Filelock::Timeout", out
          when "same_forever", "obj_forever" then assert_includes words, "sync=Filelock::DeadlockError", out
          when "spawn" then assert_includes words, "spawned=won", out
          when "release_other_hold" then assert_includes words, "other_after=held", out
          when "raise_other", "stop_other"
            other = place == "dispatch" ? "other=" : "parked_got="
            lost = name == "raise_other" ? "RuntimeError" : "Async::Stop"
            assert_includes words, "#{other}#{lost}", out
          when "fork"
            # The child does not hold the parent's win. (Ruby 3.1 breaks
            # the mini scheduler's fibers in a child forked from a thread
            # with a scheduler: "dead fiber called", exit 1, before the
            # child's own check; the async gem's child checks.)
            ok = words.include?("child=0") ||
                 (sched == "mini" && words.include?("child=1") && out.include?("dead fiber called"))
            assert ok, out
          end
        end
      end
    end
  end

  # The same kill in a blocking acquire (no scheduler; on the thread's root
  # fiber and in a fiber of it): the thread dies once the core call
  # returned, the lock is free. Crashed Ruby before ([BUG] Segmentation
  # fault: the kill was resumed without its errinfo).
  def test_kill_in_a_blocking_acquire
    lock = path("kill.lock")
    code = <<~RUBY
      require "filelock"
      seen = []
      hook = ->(_fd) { seen << :hook; Thread.current.kill; seen << :after_kill }
      t = Thread.new do
        Filelock::FileLock.new(#{lock.dump}, on_acquired: hook).acquire
        seen << :returned
      ensure
        seen << :ensure
      end
      t.join
      t2 = Thread.new { Fiber.new { Filelock::FileLock.new(#{lock.dump}, on_acquired: hook).acquire; seen << :returned }.resume }
      t2.join
      puts "RESULT \#{seen.join(",")} \#{t.status.inspect} \#{t2.status.inspect}"
      exit!(system("flock", "-n", #{lock.dump}, "true") ? 0 : 10)
    RUBY
    out, status = run_cmd(RUBY, *ruby_args, "-e", code, limit: LIMIT)
    refute_match(/\[BUG\]|Segmentation fault/, out)
    assert_equal 0, status.exitstatus, out
    assert_includes out, "RESULT hook,ensure,hook false false", out
  end
end
