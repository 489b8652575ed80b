namespace Tandem.Runtime.Etcd;

/// <summary>Where an <see cref="EtcdRegistration"/> stands.</summary>
public enum RegistrationState
{
    /// <summary>Granting a lease and writing the keys (at start, or again after the lease was lost).</summary>
    Registering,

    /// <summary>The keys are in etcd under a live lease that is being refreshed.</summary>
    Registered,

    /// <summary>Refreshes are failing (etcd unreachable); the keys stay until the lease expires.</summary>
    Disconnected,

    /// <summary>The keys were removed on purpose (drain or shutdown); nothing is refreshed any more.</summary>
    Deregistered,
}
