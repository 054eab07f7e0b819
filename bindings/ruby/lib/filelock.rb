# frozen_string_literal: true

# Ruby binding of libfilelock: the idiomatic layer over the SWIG extension
# filelock_ext (swig/ruby.i). All lock semantics are in the C core; this
# file maps names, keywords, blocks and the singleton registry.
#
#   require "filelock"
#   lock = Filelock::FileLock.new("high_ground.txt.lock", timeout: 1)
#   lock.synchronize { File.write("high_ground.txt", "x", mode: "a") }
#
#   rw = Filelock::ReadWriteLock.new("cache.lock")
#   rw.read { File.read("cache") }                 # many readers at once
#   rw.write(timeout: 10) { File.write("cache", "x") }  # one writer alone
#
# Waits release the GVL and end promptly on Thread#raise, Thread#kill,
# Timeout.timeout and Ctrl-C (the lock state is rolled back by the core).

require "timeout"
require "io/wait"
require "filelock_ext"

module Filelock
  Ext = ::Filelock_ext
  private_constant :Ext

  # Version of the C library this binding was built with.
  VERSION = Ext.fl_version

  # A core failure that is neither an OS error, a bad argument, a timeout
  # nor a deadlock (e.g. the lock path is not a regular file). #code is the
  # core's error name as a Symbol, e.g. :ENOTREG.
  class Error < StandardError
    attr_reader :code

    def initialize(message = nil, code = nil)
      super(message)
      @code = code
    end
  end

  # The lock was not acquired in time (or at the single attempt of a
  # non-blocking acquire / timeout 0).
  class Timeout < ::Timeout::Error
    # The path of the lock file that could not be acquired.
    attr_reader :lock_file

    def initialize(lock_file = nil, message = nil)
      @lock_file = lock_file
      super(message || "The file lock '#{lock_file}' could not be acquired.")
    end
  end

  # Asking a ReadWriteLock for the other mode while holding it (write while
  # holding read, or read while holding write): flock's conversion is not
  # atomic, so the core refuses instead of silently dropping the lock.
  # Release first. #code is :ELOCKMODE.
  class LockModeError < Error
  end

  # Waiting forever for a lock file this thread already holds through
  # another handle would never end (share one handle, e.g. singleton: true,
  # or use a timeout).
  class DeadlockError < ::ThreadError
  end

  # The extension builds these from the core's error codes (fl_rb_error_new
  # in swig/ruby.i is the one mapping).
  Ext.fl_rb_register_errors(Timeout, DeadlockError, LockModeError, Error)

  # Who holds a lock (Lock#owner): the owner record of a soft lock's marker
  # ("<pid>\n<hostname>\n<start token>\n", as the pure-Python filelock
  # writes it) or, for the kernel lock, the holding process the OS reports.
  # pid: Integer; hostname: String; start_token: String or nil (none
  # recorded); this_process: true if the holder is this process on this host.
  Owner = Struct.new(:pid, :hostname, :start_token, :this_process) do
    alias_method :this_process?, :this_process
  end

  @logger = nil

  class << self
    # The Logger receiving a debug message for each step (nil: off, the
    # default).
    attr_reader :logger

    # Filelock.logger = Logger.new($stderr) turns debug logging on.
    def logger=(logger)
      @logger = logger
      Ext.fl_rb_set_log_sink(logger ? method(:deliver_log) : nil)
    end

    # Takes the exclusive OS lock that FileLock takes (flock) on an IO or a
    # descriptor number the caller owns (and still closes); nothing else is
    # done to it. blocking: true waits until granted (woken by the release;
    # interruptible by Thread#raise, Timeout.timeout, Ctrl-C); false makes
    # one attempt. poll_interval must be > 0 when blocking (the pure-Python
    # filelock's signature; the wait does not poll). Returns true when held,
    # false when blocking is false and another holder has it.
    def lock_descriptor(io, blocking: true, poll_interval: 0.05)
      Ext.fl_rb_lock_descriptor(descriptor_of(io), blocking, Float(poll_interval))
    end

    # Releases what lock_descriptor took; the descriptor stays open.
    def unlock_descriptor(io)
      Ext.fl_rb_unlock_descriptor(descriptor_of(io))
      nil
    end

    private

    def descriptor_of(io)
      fd = io.respond_to?(:fileno) ? io.fileno : io
      raise TypeError, "expected an IO or an Integer descriptor, not #{io.class}" unless fd.is_a?(Integer)

      fd
    end

    # Called by the extension with the GVL held and no core call active.
    # A failing logger must not break locking, and an interrupt aimed at
    # the thread is kept for after the message.
    def deliver_log(message)
      Thread.handle_interrupt(Object => :never) do
        logger = @logger
        logger&.debug(message)
      end
    rescue StandardError
      nil
    end
  end

  # What every lock class shares: the handle, its settings, state, owner
  # inspection and release. FileLock/SoftFileLock (BaseFileLock) add the
  # exclusive acquire; ReadWriteLock adds the read and write modes.
  class AbstractLock
    # Singleton objects: the core decides which paths are the same lock file
    # (and refuses differing settings); each class keeps one Ruby object per
    # singleton core handle, weakly, keyed by the core's handle id.
    REGISTRY_LOCK = Mutex.new
    private_constant :REGISTRY_LOCK

    # Creates a lock (nothing is opened until the first acquire). With
    # singleton: true, an existing lock object of this class for the same
    # lock file is returned (ArgumentError if its settings differ).
    def self.new(lock_file, **options)
      lock = super
      return lock unless lock.singleton?

      REGISTRY_LOCK.synchronize do
        registry = (@singletons ||= ObjectSpace::WeakMap.new)
        id = lock.__send__(:lock_id)
        existing = registry[id]
        if existing
          lock.__send__(:dispose)
          existing
        else
          registry[id] = lock
        end
      end
    end

    # The lock file's path as given.
    attr_reader :lock_file

    # Default timeout in seconds (-1: forever).
    def timeout
      Ext.fl_get_timeout(@handle)
    end

    def timeout=(value)
      Ext.fl_set_timeout(@handle, seconds(value, "timeout"))
    end

    def blocking?
      Ext.fl_get_blocking(@handle) == 1
    end

    def blocking=(value)
      Ext.fl_set_blocking(@handle, value ? 1 : 0)
    end

    def poll_interval
      Ext.fl_get_poll_interval(@handle)
    end

    def poll_interval=(value)
      Ext.fl_set_poll_interval(@handle, seconds(value, "poll_interval"))
    end

    # The explicit mode for a new lock file, or nil for the default.
    def mode
      m = Ext.fl_get_mode(@handle)
      m == Ext::FL_MODE_DEFAULT ? nil : m
    end

    # True if this thread (any thread, for thread_local: false) holds it;
    # under a Fiber scheduler, this fiber.
    def locked?
      lock_counter.positive?
    end

    # The recursion level seen by this thread (0 when not held); under a
    # Fiber scheduler, by this fiber.
    def lock_counter
      owner = fiber_owner
      owner ? Ext.fl_rb_counter_as(@handle, owner) : Ext.fl_lock_counter(@handle)
    end

    def thread_local?
      Ext.fl_is_thread_local(@handle) == 1
    end

    def singleton?
      Ext.fl_is_singleton(@handle) == 1
    end

    # :kernel or :soft (:soft for a SoftFileLock).
    def kind
      Ext.fl_lock_kind(@handle) == Ext::FL_SOFT ? :soft : :kernel
    end

    # Releases one level (every level with force: true). Releasing a lock
    # this thread does not hold does nothing.
    def release(force: false)
      owner = fiber_owner
      if owner
        Ext.fl_rb_hub_release(Hub.existing&.hub, @handle, owner, force)
      else
        Ext.fl_release(@handle, force ? 1 : 0)
      end
      nil
    end

    # Who holds the lock file now, as a Filelock::Owner, or nil when it is
    # free or the holder cannot be told (a soft marker without an owner
    # record, e.g. one written by an older pure-Python filelock; a kernel
    # lock where the OS does not say). Any process's hold counts, this
    # one's included. A snapshot: it may change right after.
    def owner
      rec = Ext.fl_rb_owner(@handle)
      rec && Owner.new(*rec)
    end

    # True if this process holds the lock file: through this object (any
    # thread) or any other lock object or thread of it (the core decides).
    def owned_by_us?
      Ext.fl_held_by_this_process(@handle) == 1
    end

    def inspect
      "#<#{self.class} #{@lock_file.inspect} locked=#{locked?} counter=#{lock_counter}>"
    end
    alias to_s inspect

    private

    # options: what the caller gave, among `allowed`; fixed: what the class
    # decides (kind, read_write).
    def open_handle(lock_file, options, allowed, **fixed)
      unknown = options.keys - allowed
      unless unknown.empty?
        raise ArgumentError, "unknown keyword#{'s' if unknown.size > 1}: #{unknown.map(&:inspect).join(', ')}"
      end

      path = lock_file.respond_to?(:to_path) ? lock_file.to_path : lock_file
      raise TypeError, "lock_file must be a String or Pathname, not #{lock_file.class}" unless path.is_a?(String)

      # A new Options holds the core's defaults (fl_options_init), the only
      # place they live: only what was given (and not nil) is set.
      opts = Ext::Options.new
      fixed.merge(options).each { |key, value| set_option(opts, key, value, path) unless value.nil? }
      @lock_file = path.dup.freeze
      # Kept here: the core holds only its identity, and calls it through
      # each acquire (so the garbage collector sees it through this object).
      @on_acquired = options[:on_acquired]
      @handle = Ext.fl_rb_lock_new(@lock_file, opts)
    end

    # Sets one fl_options field from its keyword.
    def set_option(opts, key, value, path)
      case key
      when :timeout, :poll_interval, :lifetime
        opts.__send__(:"#{key}=", seconds(value, key, path))
      # Through the core's setters, which mark them given (0 is then refused).
      when :lease_duration
        Ext.fl_options_set_lease_duration(opts, seconds(value, key, path))
      when :heartbeat_interval
        Ext.fl_options_set_heartbeat_interval(opts, seconds(value, key, path))
      when :mode then opts.mode = Integer(value)
      when :kind then opts.kind = value
      when :on_acquired then Ext.fl_rb_options_on_acquired(opts, value)
      else opts.__send__(:"#{key}=", value ? 1 : 0) # the yes/no fields
      end
    end

    # Acquires in the given mode (shared: true for read), yields self and
    # releases in all cases; returns the block's value. A release error
    # (Filelock::Error, e.g. :ELOST for a lost lease) is raised when the block
    # ended normally; with the block's own exception in flight the lock is
    # released all the same and that exception goes on (a lost lease is in
    # #compromise), as Lua's `with` does (docs/soft-lock-protocol.md, "A lost
    # hold at release").
    def hold(shared, timeout, poll_interval, blocking, cancel_check = nil)
      # The extension marks `won` before anything can interrupt this thread,
      # so an interrupt arriving right after the lock was won still releases.
      won = [false]
      # An exception raised here (by the block, or into this thread while
      # it runs) is the one in flight: remembered as such, not told apart by
      # identity with $! (a block that re-raises the exception its caller
      # was handling raises that very object). A block left by break, next
      # or throw ended without one: the release's error is raised.
      in_flight = nil
      begin
        core_acquire(shared, timeout, blocking, poll_interval, won, cancel_check, @on_acquired)
        yield self
      rescue Exception => e # rubocop:disable Lint/RescueException -- re-raised as it is
        in_flight = e
        raise
      ensure
        if won[0]
          if in_flight
            begin
              release
            rescue Filelock::Error
              nil # released all the same; the block's exception is the one to see
            end
          else
            release
          end
        end
      end
    end

    # The current fiber's owner token when a Fiber scheduler runs it (a
    # non-blocking fiber): its waits then park only the fiber, through the
    # thread's Hub. nil otherwise (the thread's GVL-free blocking wait).
    def fiber_owner
      return nil if Fiber.scheduler.nil? || Fiber.current.blocking?

      Fiber.current.object_id
    end

    # Under a Fiber scheduler the wait parks only its fiber (Hub):
    # cancel_check is called by the waiting fiber at each of its wake-ups
    # (at least every poll interval, 50 ms at most); on_acquired is run by
    # the core with the locked descriptor once won, on the fiber that
    # acquires or the hub's driver fiber (refusal releases, as always).
    def core_acquire(shared, timeout, blocking, poll_interval, token, cancel_check = nil,
                     on_acquired = nil)
      owner = fiber_owner
      if owner
        if cancel_check && !cancel_check.respond_to?(:call)
          raise TypeError, "cancel_check must respond to #call"
        end

        Hub.current.acquire(@handle, owner, shared, timeout, blocking, poll_interval, token,
                            cancel_check, on_acquired)
      else
        Ext.fl_rb_acquire(@handle, shared ? 1 : 0, timeout, blocking, poll_interval, token,
                          cancel_check, on_acquired)
      end
    end

    # value as seconds (a Float); a non-number or a number with no real
    # value (Complex with an imaginary part) is a TypeError naming the
    # setting and the lock file. The core checks the range.
    def seconds(value, name = "seconds", path = @lock_file)
      where = path ? " (lock file '#{path}')" : ""
      raise TypeError, "#{name} must be Numeric, not #{value.class}#{where}" unless value.is_a?(Numeric)

      begin
        value.to_f
      rescue RangeError, TypeError, NoMethodError
        raise TypeError, "#{name} must be a real number, got #{value.inspect}#{where}"
      end
    end

    def lock_id
      Ext.fl_lock_id(@handle)
    end

    # Frees the handle now (a singleton duplicate); the object is unusable.
    def dispose
      Ext.fl_rb_lock_dispose(@handle)
    end
  end

  # What FileLock and SoftFileLock share: an exclusive lock; the subclasses
  # only pick the core's lock kind.
  class BaseFileLock < AbstractLock
    # Creates a lock and holds it for the block (returns the block's
    # value); without a block, returns the lock acquired.
    def self.open(lock_file, **options, &block)
      lock = new(lock_file, **options)
      return lock.acquire unless block

      lock.synchronize(&block)
    end

    # lock_file: a String or an object with #to_path (Pathname).
    # Keywords (the core's default for any left out or nil):
    # timeout: seconds; negative waits forever (default), 0 makes one attempt.
    # mode: permission bits of a new lock file (default: 0666 & ~umask).
    # thread_local: lock state per thread (default) or shared by all threads.
    # blocking: false makes every acquire a single attempt (default true).
    # singleton: one lock object per lock file in this process (default false).
    # poll_interval: ceiling between re-checks where no wake-up exists
    # (default 0.05 s).
    # on_acquired: FileLock only: a callable given the locked descriptor
    # (Integer) once per acquisition (not on re-entry), before acquire
    # returns; if it raises, the lock is released and the error propagates.
    # lifetime: SoftFileLock only: seconds after which a marker is stale
    # even while its holder lives (default nil: never); see SoftFileLease.
    def initialize(lock_file, **options)
      super()
      on_acquired = options[:on_acquired]
      if on_acquired && self.class::KIND == Ext::FL_SOFT
        raise ArgumentError,
              "on_acquired is not supported by #{self.class.name.split('::').last}: only kernel locks " \
              "expose the lock descriptor"
      end
      raise TypeError, "on_acquired must respond to #call" if on_acquired && !on_acquired.respond_to?(:call)

      lifetime = options[:lifetime]
      options = options.merge(lifetime: nil) if lifetime && !Lease.lifetime(lifetime, self.class)
      open_handle(lock_file, options, self.class::KEYWORDS, kind: self.class::KIND)
    end

    KEYWORDS = %i[timeout mode thread_local blocking singleton poll_interval on_acquired lifetime].freeze

    # The on_acquired callable, or nil.
    attr_reader :on_acquired

    # Seconds after which a soft marker is stale even while its holder
    # lives, or nil.
    def lifetime
      v = Ext.fl_get_lifetime(@handle)
      v.positive? ? v : nil
    end

    # Acquires the lock (recursively: each acquire needs a release). nil
    # keywords take the lock's defaults. With a block: holds the lock for
    # the block and returns its value (as #synchronize); without: returns
    # self, held. Raises Filelock::Timeout when not won in time, or when
    # cancel_check (a callable, asked at every wake-up of the wait) returns
    # true; what cancel_check raises propagates.
    def acquire(timeout: nil, poll_interval: nil, blocking: nil, cancel_check: nil, &block)
      if block
        return synchronize(timeout: timeout, poll_interval: poll_interval, blocking: blocking,
                           cancel_check: cancel_check, &block)
      end

      core_acquire(false, timeout, blocking, poll_interval, nil, cancel_check, @on_acquired)
      self
    end

    # Acquires, yields self, and releases in all cases; returns the block's
    # value.
    def synchronize(timeout: nil, poll_interval: nil, blocking: nil, cancel_check: nil, &block)
      hold(false, timeout, poll_interval, blocking, cancel_check, &block)
    end

    # For operators: deletes a SoftFileLock's marker whoever holds it.
    # THIS VOIDS MUTUAL EXCLUSION for the current holder, who goes on as if
    # it held the lock while someone else may take it: use it only when the
    # holder is known to be gone. Markers of dead holders on this host are
    # reclaimed by acquire anyway, without this call. A FileLock raises
    # Filelock::Error (code :ENOTSUP): the OS drops a kernel lock when its
    # holder exits.
    def break_lock
      Ext.fl_break_lock(@handle)
      nil
    end
  end

  # The kernel lock: flock(2) on the lock file (never deleted).
  class FileLock < BaseFileLock
    KIND = Ext::FL_KERNEL
  end

  # An exclusive-create marker file, for file systems without OS locks.
  class SoftFileLock < BaseFileLock
    KIND = Ext::FL_SOFT
  end

  # A kernel lock that any number of readers hold together, or one writer
  # alone, across threads and processes (and other languages' ReadWriteLock
  # and flock(1) -s/-x on the same file):
  #
  #   rw = Filelock::ReadWriteLock.new("cache.lock", timeout: 10)
  #   rw.read { ... }                  # shared
  #   rw.write(blocking: false) { ... }  # exclusive, one attempt
  #
  # Each thread holds it on its own (threads exclude each other as
  # processes do). Recursion stays within one mode: asking for write while
  # holding read, or read while holding write, raises Filelock::LockModeError
  # (flock's conversion is not atomic). A waiting writer closes a gate (the
  # file "<lock_file>.gate") to new readers, so continuous readers cannot
  # starve it.
  class ReadWriteLock < AbstractLock
    # timeout, blocking, poll_interval, mode: as for FileLock. Each thread
    # holds it on its own (the core's default thread_local).
    # singleton: one lock object per lock file in this process. Off by
    # default (unlike Python's is_singleton=True): Ruby frees objects late,
    # so a forgotten lock object with other settings would make a later
    # new() fail at random.
    def initialize(lock_file, **options)
      super()
      open_handle(lock_file, options, KEYWORDS, kind: Ext::FL_KERNEL, read_write: true)
    end

    KEYWORDS = %i[timeout blocking singleton poll_interval mode].freeze

    # Acquires in read (shared) mode, recursively; without a block returns
    # self, held (each acquire needs a release); with a block, as #read.
    def acquire_read(timeout: nil, blocking: nil, poll_interval: nil, &block)
      return read(timeout: timeout, blocking: blocking, poll_interval: poll_interval, &block) if block

      core_acquire(true, timeout, blocking, poll_interval, nil)
      self
    end

    # Acquires in write (exclusive) mode; see #acquire_read.
    def acquire_write(timeout: nil, blocking: nil, poll_interval: nil, &block)
      return write(timeout: timeout, blocking: blocking, poll_interval: poll_interval, &block) if block

      core_acquire(false, timeout, blocking, poll_interval, nil)
      self
    end

    # Holds the lock in read mode for the block; returns its value.
    def read(timeout: nil, blocking: nil, poll_interval: nil, &block)
      raise ArgumentError, "ReadWriteLock#read needs a block" unless block

      hold(true, timeout, poll_interval, blocking, &block)
    end

    # Holds the lock in write mode for the block; returns its value.
    def write(timeout: nil, blocking: nil, poll_interval: nil, &block)
      raise ArgumentError, "ReadWriteLock#write needs a block" unless block

      hold(false, timeout, poll_interval, blocking, &block)
    end

    # :read or :write as held by this thread, or nil.
    def held_mode
      return nil unless locked?

      Ext.fl_is_shared(@handle) == 1 ? :read : :write
    end

    def inspect
      "#<#{self.class} #{@lock_file.inspect} held_mode=#{held_mode.inspect} counter=#{lock_counter}>"
    end
    alias to_s inspect
  end

  # ------------------------------------------------------------------------
  # Leases (docs/soft-lock-protocol.md, "Leases")
  # ------------------------------------------------------------------------

  # Why a lease was lost (SoftFileLease#compromise, the on_compromise
  # argument): reason is :marker_missing, :owner_changed or :refresh_failed;
  # error the last refresh's SystemCallError for :refresh_failed, else nil.
  LeaseCompromise = Struct.new(:lock_file, :reason, :error)

  # A soft lock whose claim expires: a thread of the C library refreshes the
  # marker every heartbeat_interval seconds while it is held, and any
  # contender (on this host or another sharing the file system) with the
  # same lease_duration takes it over once the marker is lease_duration
  # seconds old -- a frozen or partitioned holder whose process still runs
  # included. A holder that lost its claim learns it: the on_compromise proc
  # (or the block given to new) is called with a LeaseCompromise from a Ruby
  # thread of this library, #compromise keeps it, and release raises
  # Filelock::Error with code :ELOST. A contender with another
  # lease_duration raises Filelock::Error (:ELEASEMISMATCH). Not on Windows.
  #
  #   lease = Filelock::SoftFileLease.new("job.lock", lease_duration: 30) do |c|
  #     warn "lost #{c.lock_file}: #{c.reason}"
  #   end
  #   lease.synchronize { work }
  class SoftFileLease < SoftFileLock
    # The soft lock's keywords and the lease's (lifetime: the lease's
    # duration sets when it expires).
    KEYWORDS = (BaseFileLock::KEYWORDS - %i[lifetime] + %i[lease_duration heartbeat_interval]).freeze
    # The lease_duration of a lease given none (seconds): the core's.
    DEFAULT_DURATION = Ext::FL_LEASE_DEFAULT_DURATION

    # The object kept (a singleton's duplicate is dropped by AbstractLock.new)
    # receives the loss reports.
    def self.new(lock_file, **options, &block)
      lease = super
      Lease.watch(lease, lease.instance_variable_get(:@handle))
      lease
    end

    # lease_duration: seconds (default DEFAULT_DURATION, the core's);
    # heartbeat_interval: seconds between refreshes (nil: the core's default,
    # a third of lease_duration). The core checks both (ArgumentError, with
    # its message).
    def initialize(lock_file, lease_duration: DEFAULT_DURATION, heartbeat_interval: nil,
                   on_compromise: nil, **options, &block)
      @on_compromise = on_compromise || block
      @compromise = nil
      super(lock_file, **options, lease_duration: lease_duration, heartbeat_interval: heartbeat_interval)
    end

    # The loss of the claim (a LeaseCompromise), or nil while it holds;
    # reset by the next acquire that takes the lock.
    attr_reader :compromise

    def lease_duration
      Ext.fl_get_lease_duration(@handle)
    end

    def heartbeat_interval
      Ext.fl_get_heartbeat_interval(@handle)
    end

    def acquire(timeout: nil, poll_interval: nil, blocking: nil, &block)
      @compromise = nil unless locked? || block
      super
    end

    def synchronize(timeout: nil, poll_interval: nil, blocking: nil, &block)
      @compromise = nil unless locked?
      super
    end

    private

    # Called by the watcher thread.
    def compromised(reason, errno)
      return if @compromise

      error = errno.zero? ? nil : SystemCallError.new("lease refresh of #{lock_file}", errno)
      @compromise = LeaseCompromise.new(lock_file, reason.tr("-", "_").to_sym, error)
      @on_compromise&.call(@compromise)
    end
  end

  # The binding's side of leases: the handles, and the Ruby thread that
  # hands the core's loss reports (written to a pipe by the heartbeat
  # thread, which may not call Ruby) to each lease.
  module Lease
    LEASES = ObjectSpace::WeakMap.new
    MUTEX = Mutex.new
    @thread = nil
    @pid = nil

    # Validates lifetime (the core's rules: ArgumentError); true when the
    # class honours it, false (with a warning) when it does not. Checked
    # before the class may ignore it, so without a lock file.
    def self.lifetime(value, cls)
      return false if value.nil?
      raise TypeError, "lifetime must be Numeric, not #{value.class}" unless value.is_a?(Numeric)

      opts = Ext::Options.new
      opts.lifetime = value.to_f
      Ext.fl_options_check(opts)
      if cls::KIND != Ext::FL_SOFT
        warn "lifetime is ignored for #{cls}: a native OS lock cannot be broken safely by file age; " \
             "only SoftFileLock supports lifetime-based expiry", uplevel: 4
        return false
      end
      value.positive?
    end

    def self.watch(lease, handle)
      fd = Ext.fl_rb_watch_lease(handle)
      MUTEX.synchronize do
        LEASES[Ext.fl_lock_id(handle)] = lease
        next if @thread&.alive? && @pid == Process.pid

        @pid = Process.pid
        io = IO.for_fd(fd, autoclose: false)
        @thread = Thread.new { dispatch(io) }
        @thread.name = "filelock-lease"
      end
    end

    def self.dispatch(io)
      loop do
        rec = io.read(16)
        break unless rec && rec.bytesize == 16

        id, reason, errno = rec.unpack("Q<l<l<")
        lease = MUTEX.synchronize { LEASES[id] }
        begin
          lease&.__send__(:compromised, Ext.fl_lease_loss_name(reason), errno)
        rescue StandardError => e
          warn "filelock: on_compromise raised #{e.class}: #{e.message}"
        end
      end
    end
    private_class_method :dispatch
  end
  private_constant :Lease

  # The waits of one thread's fibers under a Fiber scheduler
  # (Fiber.set_scheduler): the C core's event-loop wait hub. A driver fiber
  # waits for the hub's descriptor with IO#wait_readable (the scheduler's
  # io_wait) or its next re-check, dispatches, and wakes each fiber whose
  # wait ended through its Thread::Queue (the scheduler's block/unblock).
  # No thread is blocked and nothing polls.
  class Hub
    # This thread's hub (made on first use; a forked child makes its own).
    def self.current
      hub = existing
      return hub if hub

      Thread.current.thread_variable_set(:filelock_hub, new)
    end

    # This thread's hub if it has one, else nil.
    def self.existing
      hub = Thread.current.thread_variable_get(:filelock_hub)
      hub if hub && hub.pid == Process.pid
    end

    attr_reader :hub, :pid

    def initialize
      @hub = Ext.fl_rb_hub_new
      fd = Ext.fl_rb_hub_fd(@hub)
      @io = fd >= 0 ? IO.for_fd(fd, autoclose: false) : nil
      @pid = Process.pid
      @waiting = 0
      @driver = nil
    end

    # Acquires for the fiber's owner token; parks the fiber while waiting.
    # Raises what the blocking acquire would. An interrupted wait (an
    # exception raised into the fiber) leaves nothing held: a win it did
    # not see is released, which hands the lock on.
    #
    # cancel_check: called by the waiting fiber at each of its wake-ups: a
    # ticker fiber of its own wakes it (a :tick on its queue) at least every
    # CHECK_EVERY seconds, or its poll interval when shorter, whatever the
    # driver is waiting for; true ends the wait as a Filelock::Timeout, an
    # exception it raises ends it with that exception.
    # on_acquired: the lock's hook, run by the core once it wins.
    def acquire(handle, owner, shared, timeout, blocking, poll_interval, token, cancel_check = nil,
                on_acquired = nil)
      status = [nil, nil, nil, Thread::Queue.new]
      # The core runs the hook inside the hub's calls: in a blocking fiber,
      # so that nothing it does (sleep, IO) lets another fiber into the hub
      # (withdrawing a wait the dispatch is about to try) before it returns.
      hook = on_acquired && ->(fd) { Fiber.new(blocking: true) { on_acquired.call(fd) }.resume }
      if Ext.fl_rb_hub_acquire(@hub, handle, owner, shared ? 1 : 0, timeout, blocking,
                               poll_interval, status, hook)
        token[0] = true if token
        return
      end
      @waiting += 1
      ticking = [cancel_check ? check_step(handle, poll_interval) : nil]
      result = nil
      begin
        start_ticker(status, ticking) if ticking[0]
        start_driver
        while (result = status[3].pop) == :tick
          raise Filelock::Timeout, Ext.fl_lock_path(handle) if cancel_check.call
        end
        token[0] = true if token && result == true
      ensure
        @waiting -= 1
        ticking[0] = nil
        if result != true && !result.is_a?(Exception) && !Ext.fl_rb_hub_cancel(@hub, status) &&
           status[0] == true
          Ext.fl_rb_hub_release(@hub, handle, owner, false)
        end
      end
      raise result unless result == true
    end

    # The longest a cancel_check waits between two calls (seconds): the
    # core's "at least every 50 ms" for the blocking wait's cancel callback.
    CHECK_EVERY = 0.05
    # Never shorter (a poll_interval of 0 must not spin the thread).
    CHECK_FLOOR = 0.005

    private

    def start_driver
      return if @driver&.alive?

      @driver = Fiber.schedule { drive }
    end

    # ticking[0]: the seconds between two ticks; nil ends the ticker.
    def start_ticker(status, ticking)
      Fiber.schedule do
        while (step = ticking[0])
          sleep step
          status[3].push(:tick) if ticking[0] && status[3].empty?
        end
      end
    end

    def check_step(handle, poll_interval)
      step = poll_interval.nil? ? Ext.fl_get_poll_interval(handle) : poll_interval.to_f
      step.clamp(CHECK_FLOOR, CHECK_EVERY)
    end

    def drive
      while @waiting.positive?
        t = Ext.fl_rb_hub_timeout(@hub)
        t = 1.0 if t.negative?
        if t.positive?
          @io ? @io.wait_readable(t) : sleep(t)
        end
        Ext.fl_rb_hub_dispatch(@hub).each { |st| st[3].push(st[0]) }
      end
    end
  end
  private_constant :Hub
end
