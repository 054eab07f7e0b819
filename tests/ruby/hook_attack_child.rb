# frozen_string_literal: true

# One hostile on_acquired hook of a wait under a Fiber scheduler, in its own
# process (test_hook_attack.rb runs it: a crash or a hang must not take
# minitest with it). argv: scenario, lock path, "dispatch" (the win comes
# after a wait, inside the hub's dispatch, on the driver fiber) or "once"
# (won at once inside fl_hub_acquire, on the acquiring fiber; the thread's
# hub already made by a pending wait on a side file), and the scheduler:
# "mini" (tests/ruby/mini_scheduler.rb) or "async" (the async gem).
#
# Prints "RESULT <what the waiting fiber got> key=value ..." once the
# scheduler has finished; exits 10 if anything of this process still holds
# one of the files after everything was released (checked with flock(1)).
# The waiting fiber itself checks that what the API says (lock.locked?)
# matches what another process sees (key "api").

require "filelock"
require_relative "mini_scheduler"

NAME, PATH, WHEN, SCHED = ARGV
OTHER = "#{PATH}.other"
SIDE = "#{PATH}.side"
STDOUT.sync = true
require "async" if SCHED == "async"

def taken_elsewhere?(path = PATH)
  !system("flock", "-n", path, "true")
end

def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)

# Sleeps (parking the fiber) until the block is true or `limit` passed.
def wait_until(limit = 10)
  deadline = now + limit
  sleep 0.01 until yield || now > deadline
end

# A new fiber (and its Async::Task under the async gem) running the block.
def spawn_fiber(&block)
  if SCHED == "async"
    task = Async::Task.current.async(&block)
    [task.fiber, task]
  else
    [Fiber.schedule(&block), nil]
  end
end

# Acquires `lock` in the current fiber and releases what it won; the
# outcome (won / the exception's class) goes to state[key].
def take(state, key, lock, **kw)
  lock.acquire(**kw)
  state[key] = "won"
  lock.release(force: true)
rescue Exception => e # rubocop:disable Lint/RescueException -- reported
  state[key] = e.class.name
  state[:"#{key}_msg"] = e.message
end

# What the hook does, once (its first call).
def attack(state)
  case NAME
  when "raise_own" then state[:waiter].raise(RuntimeError, "from hook")
  when "raise_own_drop"
    state[:waiter].raise(RuntimeError, "from hook")
    state.delete(:lock)
    GC.start
  when "stop_own" then state[:task].stop
  when "stop_current" then Async::Task.current.stop
  when "raise_other" then (state[:other_fiber] || state[:parked]).raise(RuntimeError, "from hook")
  when "stop_other" then (state[:other_task] || state[:parked_task]).stop
  when "kill_thread" then Thread.current.kill
  when "throw" then throw :nowhere
  when "exit" then exit 7
  when "exit_bang" then exit!(7)
  when "fork"
    pid = fork
    if pid
      state[:pid] = pid
    else
      state[:child] = true
      Thread.new { sleep 10; exit!(6) } # the child must not hang either
    end
  when "same_t0" then take(state, :sync, state[:lock], timeout: 0)
  when "same_forever" then take(state, :sync, state[:lock])
  when "obj_t0" then take(state, :sync, Filelock::FileLock.new(PATH), timeout: 0)
  when "obj_forever" then take(state, :sync, Filelock::FileLock.new(PATH))
  when "spawn"
    # A new fiber of the scheduler, started from inside the hub: its wait
    # goes through the hub while the hub is winning this one.
    state[:await] << :spawned
    Fiber.schedule { take(state, :spawned, Filelock::FileLock.new(PATH), timeout: 15) }
  when "release_other_hold" then state[:other_lock].release
  when "release_self" then state[:lock].release
  when "scheduler_run"
    # The scheduler's loop, run again from inside the hook (and the hub).
    if SCHED == "async"
      Fiber.scheduler.instance_variable_get(:@reactor).run_once(0.05)
    else
      Fiber.scheduler.run
    end
  when "sleep" then sleep 0.05
  when "gc" then GC.start
  when "freeze" then state[:lock].freeze
  when "dup"
    state[:dup] = state[:lock].dup
    take(state, :sync, state[:dup], timeout: 0)
  else raise ArgumentError, NAME
  end
end

def main
  state = { calls: 0, await: [] } # await: the keys other fibers will set
  hook = lambda do |_fd|
    state[:calls] += 1
    begin
      attack(state) if state[:calls] == 1
    ensure
      state[:hook_done] = true
    end
  end
  lock = Filelock::FileLock.new(PATH, on_acquired: hook)
  state[:lock] = lock
  if WHEN == "once"
    # A pending wait on another file makes the thread's hub and its driver:
    # the acquire below then wins at once inside fl_hub_acquire.
    state[:await] << :parked_got
    state[:parked], state[:parked_task] =
      spawn_fiber { take(state, :parked_got, Filelock::FileLock.new(SIDE), timeout: 15) }
    sleep 0.05
  end
  if NAME == "release_other_hold"
    # Another fiber's hold (of another file), released by the hook.
    state[:other_lock] = Filelock::FileLock.new(OTHER)
    state[:await] << :other_after
    spawn_fiber do
      state[:other_lock].acquire
      state[:other_held] = true
      wait_until { state[:got] }
      state[:other_after] = state[:other_lock].locked? ? "held" : "free"
      state[:other_lock].release(force: true)
    end
  end
  waiter, state[:task] = spawn_fiber do
    # Known at once: a win at once runs the hook before spawn_fiber returns.
    state[:waiter] = Fiber.current
    state[:task] = Async::Task.current if SCHED == "async"
    begin
      got = begin
        lock.acquire
        "won"
      rescue Exception => e # rubocop:disable Lint/RescueException -- reported
        state[:msg] = e.message
        e.class.name
      end
      state[:got] = got
      # What the API says, against what another process sees, once the
      # hook has returned: a fiber the hook resumes (Fiber#raise,
      # Task#stop) runs inside it, before the core has given back the win
      # it refused.
      locked = lock.locked?
      wait_until { state[:hook_done] }
      state[:api] = locked == taken_elsewhere? ? "ok" : "locked=#{locked}"
    ensure
      # (A Task#stop delivered later, at the wait just above, still
      # releases.)
      lock.release(force: true) if lock.locked?
    end
  end
  state[:waiter] = waiter
  if WHEN == "dispatch" && %w[raise_other stop_other].include?(NAME)
    # Waits behind the fiber being won (in "once" mode the hook picks the
    # fiber parked on the side file instead).
    sleep 0.05
    state[:await] << :other
    state[:other_fiber], state[:other_task] =
      spawn_fiber { take(state, :other, Filelock::FileLock.new(PATH), timeout: 15) }
  end
  sleep 0.05
  $holder.release if WHEN == "dispatch"
  wait_until { !waiter.alive? }
  state[:waiter_alive] = waiter.alive?
  if state[:child]
    # The hook forked and this is the child: it must not hold (nor have
    # released) the parent's lock.
    exit!(state[:got] != "won" && !lock.locked? ? 0 : 5)
  end
  if state[:pid]
    _, status = Process.waitpid2(state[:pid])
    state[:child] = status.exitstatus
  end
  $side.release if WHEN == "once"
  wait_until { state[:await].all? { |k| state.key?(k) } }
  state
end

$holder = Filelock::FileLock.new(PATH, thread_local: false)
$side = Filelock::FileLock.new(SIDE, thread_local: false)
WHEN == "dispatch" ? $holder.acquire : $side.acquire

result = nil
error = nil
runner = Thread.new do
  body = lambda do
    result = main
  rescue Exception => e # rubocop:disable Lint/RescueException -- reported
    error = e
  end
  if SCHED == "async"
    Async { body.call }
  else
    Fiber.set_scheduler(MiniScheduler.new)
    Fiber.schedule { body.call }
  end
end
runner.report_on_exception = false
begin
  runner.join
rescue Exception => e # rubocop:disable Lint/RescueException -- reported
  error ||= e
end
line =
  if result
    keys = %i[api sync spawned other parked_got other_after child]
    "#{result[:got] || '?'} #{keys.filter_map { |k| "#{k}=#{result[k]}" if result.key?(k) }.join(' ')} " \
      "calls=#{result[:calls]} msg=#{result[:msg].inspect}"
  elsif error
    "main-raised #{error.class} #{error.message.inspect}"
  else
    "thread-ended #{runner.status.inspect}"
  end
puts "RESULT #{line}"
$holder.release(force: true) if WHEN == "dispatch" && $holder.locked?
$side.release(force: true) if WHEN == "once" && $side.locked?
GC.start
# Nothing of ours may still hold the files once everything was released.
exit!([PATH, OTHER, SIDE].any? { |p| File.exist?(p) && taken_elsewhere?(p) } ? 10 : 0)
