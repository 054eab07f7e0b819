# frozen_string_literal: true

# Ruby binding of libfilelock: the idiomatic layer over the SWIG extension
# filelock_ext (swig/ruby.i). All lock semantics are in the C core; this
# file maps names, keywords, blocks and the singleton registry.
#
#   require "filelock"
#   lock = Filelock::FileLock.new("high_ground.txt.lock", timeout: 1)
#   lock.synchronize { File.write("high_ground.txt", "x", mode: "a") }
#
# Waits release the GVL and end promptly on Thread#raise, Thread#kill,
# Timeout.timeout and Ctrl-C (the lock state is rolled back by the core).

require "timeout"
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

  # Waiting forever for a lock file this thread already holds through
  # another handle would never end (share one handle, e.g. singleton: true,
  # or use a timeout).
  class DeadlockError < ::ThreadError
  end

  # The extension builds these from the core's error codes (fl_rb_error_new
  # in swig/ruby.i is the one mapping).
  Ext.fl_rb_register_errors(Timeout, DeadlockError, Error)

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

    private

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

  # What FileLock and SoftFileLock share; the subclasses only pick the
  # core's lock kind.
  class BaseFileLock
    # Singleton handles: the core returns the same handle for a lock file,
    # this keeps the same Ruby object for that handle (by the core's id).
    REGISTRY = ObjectSpace::WeakMap.new
    REGISTRY_LOCK = Mutex.new
    private_constant :REGISTRY, :REGISTRY_LOCK

    # Creates a lock (nothing is opened until the first acquire). With
    # singleton: true, an existing lock object for the same lock file is
    # returned (ArgumentError if its settings differ).
    def self.new(lock_file, **options)
      lock = super
      return lock unless lock.singleton?

      REGISTRY_LOCK.synchronize do
        id = lock.__send__(:lock_id)
        existing = REGISTRY[id]
        if existing
          lock.__send__(:dispose)
          existing
        else
          REGISTRY[id] = lock
        end
      end
    end

    # Creates a lock and holds it for the block (returns the block's
    # value); without a block, returns the lock acquired.
    def self.open(lock_file, **options, &block)
      lock = new(lock_file, **options)
      return lock.acquire unless block

      lock.synchronize(&block)
    end

    # lock_file: a String or an object with #to_path (Pathname).
    # timeout: seconds; -1 (or nil) waits forever, 0 makes one attempt.
    # mode: permission bits of a new lock file (nil: 0666 & ~umask).
    # thread_local: lock state per thread (true) or shared by all threads.
    # blocking: false makes every acquire a single attempt.
    # singleton: one lock object per lock file in this process.
    # poll_interval: ceiling between re-checks where no wake-up exists.
    def initialize(lock_file, timeout: -1, mode: nil, thread_local: true, blocking: true,
                   singleton: false, poll_interval: 0.05)
      path = lock_file.respond_to?(:to_path) ? lock_file.to_path : lock_file
      raise TypeError, "lock_file must be a String or Pathname, not #{lock_file.class}" unless path.is_a?(String)

      @lock_file = path.dup.freeze
      @handle = Ext.fl_rb_lock_new(@lock_file, self.class::KIND, seconds(timeout),
                                   seconds(poll_interval), blocking ? 1 : 0,
                                   mode.nil? ? Ext::FL_MODE_DEFAULT : Integer(mode),
                                   thread_local ? 1 : 0, singleton ? 1 : 0)
    end

    # The lock file's path as given.
    attr_reader :lock_file

    # Default timeout in seconds (-1: forever).
    def timeout
      Ext.fl_get_timeout(@handle)
    end

    def timeout=(value)
      Ext.fl_set_timeout(@handle, seconds(value))
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
      Ext.fl_set_poll_interval(@handle, seconds(value))
    end

    # The explicit mode for a new lock file, or nil for the default.
    def mode
      m = Ext.fl_get_mode(@handle)
      m == Ext::FL_MODE_DEFAULT ? nil : m
    end

    # True if this thread (any thread, for thread_local: false) holds it.
    def locked?
      Ext.fl_is_locked(@handle) == 1
    end

    # The recursion level seen by this thread (0 when not held).
    def lock_counter
      Ext.fl_lock_counter(@handle)
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

    # Acquires the lock (recursively: each acquire needs a release). nil
    # keywords take the lock's defaults. With a block: holds the lock for
    # the block and returns its value (as #synchronize); without: returns
    # self, held. Raises Filelock::Timeout when not won in time.
    def acquire(timeout: nil, poll_interval: nil, blocking: nil, &block)
      return synchronize(timeout: timeout, poll_interval: poll_interval, blocking: blocking, &block) if block

      Ext.fl_rb_acquire(@handle, timeout, blocking, poll_interval, nil)
      self
    end

    # Acquires, yields self, and releases in all cases; returns the block's
    # value.
    def synchronize(timeout: nil, poll_interval: nil, blocking: nil)
      # The extension marks `won` before anything can interrupt this thread,
      # so an interrupt arriving right after the lock was won still releases.
      won = [false]
      begin
        Ext.fl_rb_acquire(@handle, timeout, blocking, poll_interval, won)
        yield self
      ensure
        Ext.fl_rb_release(@handle, false) if won[0]
      end
    end

    # Releases one level (every level with force: true). Releasing a lock
    # this thread does not hold does nothing.
    def release(force: false)
      Ext.fl_rb_release(@handle, force)
      nil
    end

    def inspect
      "#<#{self.class} #{@lock_file.inspect} locked=#{locked?} counter=#{lock_counter}>"
    end
    alias to_s inspect

    private

    def seconds(value)
      return -1.0 if value.nil?
      raise TypeError, "seconds must be Numeric, not #{value.class}" unless value.is_a?(Numeric)

      value.to_f
    end

    def lock_id
      Ext.fl_lock_id(@handle)
    end

    # Frees the handle now (a singleton duplicate); the object is unusable.
    def dispose
      Ext.fl_rb_lock_dispose(@handle)
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
end
