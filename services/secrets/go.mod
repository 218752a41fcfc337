module github.com/algapsa/alga-google/services/secrets

go 1.26.8
