# frozen_string_literal: true

# The minimal Fiber scheduler of the Ruby tests (test_fiber.rb, and the
# hostile-hook children hook_attack_child.rb): IO.select over the fibers'
# descriptors, timers, block/unblock -- the interface Ruby documents for
# Fiber::SchedulerInterface, nothing more.

# A minimal Fiber scheduler: enough for io_wait, sleep and Thread::Queue.
class MiniScheduler
  def initialize
    @readers = {}  # fiber => io
    @timers = {}   # fiber => wake-up time
    @ready = []
    @blocked = 0
    @lock = Thread::Mutex.new
    @wake_r, @wake_w = IO.pipe
  end

  def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)

  # Like asyncio's run_until_complete, it refuses to run inside itself (a
  # fiber calling Fiber.scheduler.run): the outer loop's fiber would wait
  # for fibers that can only go on once it returns. (Per process: a child
  # forked from inside the loop closes its copy of the scheduler.)
  def run
    raise RuntimeError, "MiniScheduler#run: already running" if @running == Process.pid

    @running = Process.pid
    begin
      run_loop
    ensure
      @running = nil
    end
  end

  def run_loop
    while @readers.any? || @timers.any? || @blocked.positive? || @ready.any?
      timeout = @ready.empty? ? (@timers.values.min&.-(now))&.clamp(0, nil) : 0
      readable, = IO.select(@readers.values.uniq + [@wake_r], nil, nil, timeout)
      @wake_r.read_nonblock(64, exception: false) if readable&.include?(@wake_r)
      due = @timers.select { |_, t| t <= now }.keys
      woken = @readers.select { |_, io| readable&.include?(io) }.keys | due
      ready = @lock.synchronize { r = @ready; @ready = []; r }
      (woken | ready).each do |f|
        @readers.delete(f)
        @timers.delete(f)
        f.resume if f.alive?
      end
    end
  end

  def io_wait(io, events, timeout)
    f = Fiber.current
    @readers[f] = io
    @timers[f] = now + timeout if timeout
    Fiber.yield
    events
  end

  def kernel_sleep(duration = nil)
    block(:sleep, duration)
  end

  def block(_blocker, timeout = nil)
    f = Fiber.current
    if timeout
      @timers[f] = now + timeout
    else
      @blocked += 1
    end
    begin
      Fiber.yield
    ensure
      @blocked -= 1 unless timeout
    end
    true
  end

  def unblock(_blocker, fiber)
    @lock.synchronize { @ready << fiber }
    @wake_w.write_nonblock(".", exception: false)
  end

  def fiber(&block)
    f = Fiber.new(blocking: false, &block)
    f.resume
    f
  end

  def close
    run
    @wake_r.close
    @wake_w.close
  end
end
